"""Vocabularies built from the training split: words, labels and joint BPE subwords, cached on disk.

Ids: ``<pad>`` 0 and ``<unk>`` 1 always; then the optional ``<bos>``, ``<eos>``, ``<sep>``,
``<cls>``, ``<mask>`` in that order (subwords: always ``<bos>`` 2 and ``<eos>`` 3); then the entries.
A cache file ``cache_dir / f"{kind}-{key}.json"`` is keyed by a SHA-256 of the training
data and the settings, so a rerun on the same data loads it and changed data builds anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bench.data import TASK_TYPES, DataError
from bench.errors import UserError
from bench.files import atomic_write

log = logging.getLogger("bench.data")

PAD, UNK = "<pad>", "<unk>"
SPECIALS = {"bos": "<bos>", "eos": "<eos>", "sep": "<sep>", "cls": "<cls>", "mask": "<mask>"}  # optional, in id order
CACHE_VERSION = 1  # bump when a builder changes what it builds

# a word (letters, digits, _; inner apostrophes kept: don't, n't), a clitic ('s), or one other character
_TOKEN = re.compile(r"\w+(?:['’]\w+)*|['’]\w+|[^\w\s]")


def tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Words and punctuation of raw text: ``"Don't stop, it's 9.5!"`` -> Don't|stop|,|it's|9|.|5|!"""
    return _TOKEN.findall(text.lower() if lowercase else text)


class Vocab:
    """Word-level vocabulary: token <-> id, with ``<unk>`` for tokens it lacks; lowercases first if built so."""

    def __init__(self, itos: Sequence[str], lowercase: bool = False):
        if list(itos[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD} and {UNK}, not {list(itos[:2])}")
        self.itos = list(itos)
        self.lowercase = lowercase
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        self.pad_id, self.unk_id = 0, 1

    def special_id(self, name: str) -> int | None:
        """The id of an optional special (bos, eos, sep, cls), or None if this vocabulary lacks it."""
        return self.stoi.get(SPECIALS[name])

    def encode(self, tokens: Iterable[str]) -> list[int]:
        if self.lowercase:
            tokens = [token.lower() for token in tokens]
        return [self.stoi.get(token, self.unk_id) for token in tokens]

    def encode_text(self, text: str) -> list[int]:
        """``encode(tokenize(text))``."""
        return self.encode(tokenize(text, self.lowercase))

    def decode(self, ids: Iterable[int], skip_pad: bool = True) -> list[str]:
        return [self.itos[i] for i in ids if not (skip_pad and i == 0)]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and (self.itos, self.lowercase) == (other.itos, other.lowercase)

    def to_json(self) -> str:
        return json.dumps({"itos": self.itos, "lowercase": self.lowercase}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        saved = json.loads(text)
        return cls(saved["itos"], saved["lowercase"])


class Labels:
    """Label string <-> id; ids follow sorted label order, so they depend on neither frequency nor row order."""

    def __init__(self, names: Iterable[str]):
        self.names = sorted(set(names))
        self.ids = {name: i for i, name in enumerate(self.names)}

    def encode(self, label: str, unknown: int | None = None) -> int:
        """The id of ``label``; a label train never held gives ``unknown`` if set, else a DataError."""
        if label in self.ids:
            return self.ids[label]
        if unknown is None:
            raise DataError(f"the label {label!r} is not among the training labels {', '.join(self.names)}.")
        return unknown

    def decode(self, i: int) -> str:
        return self.names[i]

    def __len__(self) -> int:
        return len(self.names)

    def __eq__(self, other) -> bool:
        return isinstance(other, Labels) and self.names == other.names


class Subwords:
    """A ``tokenizers`` BPE model: text <-> ids, with pad 0, unk 1, bos 2, eos 3."""

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, text: str, bos_eos: bool = False) -> list[int]:
        ids = self.tokenizer.encode(text).ids
        return [self.bos_id, *ids, self.eos_id] if bos_eos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``, special tokens left out."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str) -> Subwords:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(text))


# -- builders ----------------------------------------------------------------------------------


def _count_words(sentences: list[list[str]], max_size: int | None, min_freq: int, specials, lowercase) -> Vocab:
    counts = Counter(token.lower() if lowercase else token for sentence in sentences for token in sentence)
    head = [PAD, UNK] + [SPECIALS[name] for name in SPECIALS if name in specials]
    words = [w for w, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if n >= min_freq]
    words = [w for w in words if w not in head]
    if max_size is not None:
        words = words[: max_size - len(head)]
    return Vocab(head + words, lowercase)


def _train_bpe(texts: list[str], vocab_size: int, min_freq: int, lowercase: bool) -> Subwords:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()  # spaces kept as "▁", so decoding restores the text
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_freq,
        special_tokens=[PAD, UNK, SPECIALS["bos"], SPECIALS["eos"]],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return Subwords(tokenizer)


def content_hash(kind: str, items: Iterable[str | Sequence[str]], settings: dict) -> str:
    """16 hex digits of SHA-256 over the settings and every item (a text, or a token list), in order."""
    digest = hashlib.sha256(json.dumps([kind, CACHE_VERSION, settings], sort_keys=True).encode("utf-8"))
    for item in items:
        text = item if isinstance(item, str) else "\x1f".join(item)
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


def cache_path(cache_dir: str | Path, kind: str, key: str) -> Path:
    return Path(cache_dir) / f"{kind}-{key}.json"


def _cached(kind: str, key: str, cache_dir: str | Path | None, build: Callable, load: Callable):
    """Load ``cache_dir/{kind}-{key}.json`` if it is there and readable; else build it and write it."""
    if cache_dir is None:
        return build()
    path = cache_path(cache_dir, kind, key)
    if path.is_file():
        try:
            return load(path.read_text(encoding="utf-8"))
        except Exception as exc:  # a torn or foreign file (tokenizers raises a bare Exception): build anew
            log.warning("rebuilding %s: the cached file cannot be read (%s)", path, exc)
    built = build()
    atomic_write(path, built.to_json())
    return built


def build_vocab(
    sentences: Iterable[Sequence[str]],
    max_size: int | None = None,
    min_freq: int = 1,
    specials: Sequence[str] = (),
    lowercase: bool = False,
    cache_dir: str | Path | None = None,
) -> Vocab:
    """Words of tokenised training ``sentences``, most frequent first (ties alphabetical).

    ``max_size`` bounds the whole vocabulary, specials included; words seen fewer than ``min_freq``
    times are left out; ``specials`` picks from bos, eos, sep, cls; ``lowercase`` folds case when
    building and when encoding.
    """
    unknown = [name for name in specials if name not in SPECIALS]
    if unknown:
        raise UserError(f"special token {unknown[0]!r} is not one of {', '.join(SPECIALS)}.")
    if max_size is not None and max_size < 2 + len(specials):
        raise UserError(f"max_size={max_size} is too small: the {2 + len(specials)} special tokens need room.")
    if min_freq < 1:
        raise UserError(f"min_freq={min_freq} is not valid: it must be at least 1.")
    sentences = [list(sentence) for sentence in sentences]
    settings = {"max_size": max_size, "min_freq": min_freq, "specials": sorted(specials), "lowercase": lowercase}
    key = content_hash("words", sentences, settings)
    build = lambda: _count_words(sentences, max_size, min_freq, specials, lowercase)
    return _cached("words", key, cache_dir, build, Vocab.from_json)


def build_subwords(
    texts: Iterable[str],
    vocab_size: int = 8000,
    min_freq: int = 2,
    lowercase: bool = False,
    cache_dir: str | Path | None = None,
) -> Subwords:
    """A joint BPE model trained on raw training ``texts`` (pass source and target together)."""
    import tokenizers

    if vocab_size < 5:
        raise UserError(f"vocab_size={vocab_size} is too small: the 4 special tokens need room.")
    texts = list(texts)
    settings = {"vocab_size": vocab_size, "min_freq": min_freq, "lowercase": lowercase, "lib": tokenizers.__version__}
    key = content_hash("bpe", texts, settings)
    build = lambda: _train_bpe(texts, vocab_size, min_freq, lowercase)
    return _cached("bpe", key, cache_dir, build, Subwords.from_json)


def build_labels(train, task_type: str) -> Labels | None:
    """Labels of the training split (tags, for labelling); None for generation."""
    if task_type not in TASK_TYPES:
        raise DataError(f"task type {task_type!r} is not one of {', '.join(TASK_TYPES)}.")
    if task_type == "generation":
        return None
    if task_type == "labelling":
        return Labels(tag for tags in train["tags"] for tag in tags)
    return Labels(train["label"])


def build_vocabs(
    data,
    task_type: str,
    max_size: int | None = None,
    min_freq: int = 1,
    lowercase: bool = False,
    specials: Sequence[str] = (),
    bpe_size: int = 8000,
    cache_dir: str | Path | None = None,
) -> tuple[Vocab | Subwords, Labels | None]:
    """The token vocabulary and the label vocabulary of ``data["train"]`` for ``task_type``.

    Labelling: words of ``tokens`` (lowercased if asked); classification and pair: words of
    ``tokenize`` over the texts; generation: joint BPE over source and target, ``bpe_size`` entries.
    """
    train = data["train"]
    if task_type == "generation":
        texts = list(train["source"]) + list(train["target"])
        return build_subwords(texts, bpe_size, min_freq, lowercase, cache_dir), None
    if task_type == "labelling":
        sentences = list(train["tokens"])
    else:
        columns = ["text"] if task_type == "classification" else ["text_a", "text_b"]
        sentences = [tokenize(text) for column in columns for text in train[column]]
    vocab = build_vocab(sentences, max_size, min_freq, specials, lowercase, cache_dir)
    return vocab, build_labels(train, task_type)
