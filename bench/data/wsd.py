"""A word-sense probe: ambiguous words whose sense only the context decides.

In the spirit of the contrastive word-sense test sets of Tang et al. (2018).
Each ambiguous pseudo-word has two senses, each signalled by its own cue words.
A text is two clauses joined by ";", in either order. The target clause holds
the ambiguous word and one cue of its sense, ``distance`` tokens away (before
or after it), among filler words. The other clause holds ``distractors`` cues
of the ambiguous word's *other* sense. The label is ``word:sense`` of the cue
in the target's own clause, so a model must tie the word to the cue across
``distance`` tokens and ignore the cues beyond the ";", which may sit closer
to it. A bag of words sees both senses' cues whenever there are distractors;
chance is 1/2 once the word is known.

Real sense-annotated data use the classification format (JSONL, TSV or CSV with
``text`` and ``label``), labels written ``word:sense``; an optional integer
column ``distance`` gets accuracy per distance. Load them with
``source=files format=jsonl files={train: ..., validation: ..., test: ...}``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import datasets

from bench.data import SPLITS
from bench.data.embedded import OptionError, _lexicon, _require

FEATURES = datasets.Features(
    {
        "text": datasets.Value("string"),
        "label": datasets.Value("string"),
        "distance": datasets.Value("int32"),
        "distractors": datasets.Value("int32"),
    }
)


def label_of(text: str, senses: dict[str, tuple[str, str]], cues: dict[str, str]) -> tuple[str, int]:
    """An independent reading of a text's label: the sense of the cue in the ambiguous word's clause,
    and that cue's distance. ``senses``: word -> its two sense names; ``cues``: cue -> "word:sense"."""
    for clause in (c.split() for c in text.split(" ; ")):
        targets = [i for i, w in enumerate(clause) if w in senses]
        if targets:
            (t,) = targets
            (c,) = [i for i, w in enumerate(clause) if w in cues]
            return cues[clause[c]], abs(c - t)
    raise ValueError(f"no ambiguous word in {text!r}")


def lexicon(n_words: int, n_cues: int, n_fillers: int) -> tuple[dict, dict, list[str]]:
    """senses: word -> (sense a, sense b); cues: cue -> "word:sense"; fillers."""
    words = _lexicon("wsd", ambiguous=n_words, cues=2 * n_words * n_cues, fillers=n_fillers)
    senses, cues = {}, {}
    for i, word in enumerate(words["ambiguous"]):
        senses[word] = ("a", "b")
        for s, sense in enumerate(senses[word]):
            for cue in words["cues"][(2 * i + s) * n_cues : (2 * i + s + 1) * n_cues]:
                cues[cue] = f"{word}:{sense}"
    return senses, cues, words["fillers"]


def rows(
    rng: random.Random,
    *,
    n_words: int = 12,
    n_cues: int = 4,
    n_fillers: int = 60,
    distances: tuple = (1, 2, 4, 8),
    distractors: tuple = (0, 1, 2),
    pad: int = 3,
) -> Iterator[dict]:
    """Endless rows; each draws its distance and distractor count from the given lists."""
    senses, cues, fillers = lexicon(n_words, n_cues, n_fillers)
    by_sense: dict[str, list[str]] = {}
    for cue, sense in cues.items():
        by_sense.setdefault(sense, []).append(cue)
    words = sorted(senses)
    while True:
        word, sense = rng.choice(words), rng.choice(("a", "b"))
        other = "b" if sense == "a" else "a"
        d, k = rng.choice(list(distances)), rng.choice(list(distractors))
        span = [rng.choice(fillers) for _ in range(d - 1)]
        pair = [word, *span, rng.choice(by_sense[f"{word}:{sense}"])]
        if rng.random() < 0.5:
            pair.reverse()
        target = (
            [rng.choice(fillers) for _ in range(rng.randint(0, pad))]
            + pair
            + [rng.choice(fillers) for _ in range(rng.randint(0, pad))]
        )
        other_clause = [rng.choice(fillers) for _ in range(rng.randint(1, pad + 1))]
        for _ in range(k):
            other_clause.insert(rng.randint(0, len(other_clause)), rng.choice(by_sense[f"{word}:{other}"]))
        clauses = [target, other_clause] if rng.random() < 0.5 else [other_clause, target]
        yield {
            "text": " ; ".join(" ".join(c) for c in clauses),
            "label": f"{word}:{sense}",
            "distance": d,
            "distractors": k,
        }


def generate(
    n_train: int = 6000, n_validation: int = 500, n_test: int = 500, seed: int = 0, **options
) -> datasets.DatasetDict:
    """Disjoint train/validation/test splits of the probe, the same for the same seed and options."""
    allowed = {"n_words", "n_cues", "n_fillers", "distances", "distractors", "pad"}
    unknown = sorted(set(options) - allowed)
    _require(
        not unknown,
        f"{unknown[0] if unknown else ''} is not an option of the wsd task; its options are "
        f"{', '.join(sorted(allowed))}.",
    )
    for name in ("distances", "distractors"):
        if name in options:
            values = list(options[name])
            _require(
                values and all(isinstance(v, int) and v >= (1 if name == "distances" else 0) for v in values),
                f"{name} must be a non-empty list of integers >= {1 if name == 'distances' else 0}, not {values!r}.",
            )
            options[name] = tuple(values)
    seen, splits = set(), {}
    sizes = {"train": n_train, "validation": n_validation, "test": n_test}
    for split in reversed(SPLITS):
        stream = rows(random.Random(f"fxbench/wsd/{seed}/{split}"), **options)
        out, misses = [], 0
        while len(out) < sizes[split]:
            row = next(stream)
            misses = misses + 1 if row["text"] in seen else 0
            if not misses:
                seen.add(row["text"])
                out.append(row)
            if misses >= 1000:
                raise OptionError(
                    f"only {len(out)} distinct wsd texts were found for the {split} split; "
                    "ask for fewer or enlarge the lexicon."
                )
        splits[split] = datasets.Dataset.from_list(out, features=FEATURES)
    return datasets.DatasetDict({split: splits[split] for split in SPLITS})
