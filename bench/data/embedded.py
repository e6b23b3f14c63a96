"""Embedded tasks: one synthetic data set per task type, made from a seed in seconds, no download.

Each task is learnable (its labels are a fixed function of the words and their
order, so a perfect score is possible) but rewards context: a per-word lookup or
a bag of words falls clearly short, so encoders that mix positions well score
higher. Content words are pseudo-words spelled from syllables ("dobeku", "mibu"),
the same for every seed; function words are English ("the", "not", "but"), so an
example can be read. The rule of each task is in its generator's docstring.

``generate`` returns the ``DatasetDict`` of the data contract (``bench.data``);
``GENERATORS`` maps each task type to an endless stream of one split's rows.
"""

from __future__ import annotations

import inspect
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import datasets

from bench.data import SPLITS, TASK_TYPES
from bench.errors import UserError


class OptionError(UserError, ValueError):
    """A bad task type, size or option of an embedded task; the message names it."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise OptionError(message)


_SPELLED_LIKE_PSEUDO_WORDS = {"some"}  # the one function word made of consonant-vowel syllables


def _lexicon(name: str, consonants: str = "bdgklmnprst", vowels: str = "aeiou", **sizes: int) -> dict[str, list[str]]:
    """Distinct pseudo-words of 2-3 syllables for each word class; the same for the same name and sizes."""
    rng, seen, classes = random.Random(f"fxbench-lexicon/{name}"), set(), {}
    for word_class, size in sizes.items():
        words = []
        while len(words) < size:
            word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 3)))
            if word not in seen and word not in _SPELLED_LIKE_PSEUDO_WORDS:
                seen.add(word)
                words.append(word)
        classes[word_class] = words
    return classes


def _require_lengths(min_length: int, max_length: int) -> None:
    _require(
        1 <= min_length <= max_length,
        f"min_length ({min_length}) must be at least 1 and at most max_length ({max_length}).",
    )


def _balanced(rng: random.Random, labels: tuple[str, ...]) -> Iterator[str]:
    """Labels in shuffled rounds of one each, so that any number of rows is balanced to within one per label."""
    while True:
        yield from rng.sample(labels, len(labels))


# --- labelling --------------------------------------------------------------------------------

TRIGGERS = {"PER": ("met", "thanked", "visited"), "LOC": ("in", "near", "toward"), "ORG": ("joined", "sued", "left")}
SUFFIXES = {"PER": ("himself",), "LOC": ("city", "harbour"), "ORG": ("group", "inc")}
DETERMINERS = ("the", "a", "this", "every")
PRONOUNS = ("he", "she", "they", "we")
CONNECTORS = ("and", "then", ",", "today")


def labelling(
    rng: random.Random,
    *,
    n_words: int = 150,
    n_modifiers: int = 40,
    max_gap: int = 3,
    min_length: int = 5,
    max_length: int = 25,
) -> Iterator[dict]:
    """Named-entity-like spans (PER, LOC, ORG; BIO tags) of ambiguous words whose tag is set by context.

    One pool of words plays every part: a common noun after a determiner and up
    to ``max_gap`` modifiers ("met the old W" -> O), a verb after a pronoun ("she
    W" -> O), or a name of one to three words. A name's type is set by a trigger
    word up to ``max_gap`` modifiers before it ("met old W W" -> PER) or, after
    "with", by the word just after it ("with W W inc" -> ORG); names joined by
    "and" share it ("with W and W W inc"). So a word's tag depends on words
    several positions away, on either side, and the most frequent tag of each
    word is no better than always "O".
    """
    _require(n_words >= 2, f"n_words must be at least 2, not {n_words}.")
    _require(n_modifiers >= 1, f"n_modifiers must be at least 1, not {n_modifiers}.")
    _require(max_gap >= 0, f"max_gap must be at least 0, not {max_gap}.")
    _require_lengths(min_length, max_length)
    words = _lexicon("labelling", pool=n_words, modifiers=n_modifiers)
    pool, modifiers = words["pool"], words["modifiers"]

    def modified(head: list[tuple[str, str]]) -> list[tuple[str, str]]:  # up to max_gap modifiers before head
        return [(rng.choice(modifiers), "O") for _ in range(rng.randint(0, max_gap))] + head

    def noun_phrase() -> list[tuple[str, str]]:
        return [(rng.choice(DETERMINERS), "O"), *modified([(rng.choice(pool), "O") for _ in range(rng.randint(1, 2))])]

    def names(kind: str) -> list[tuple[str, str]]:  # one name, or more joined by "and"
        size = rng.choice((1, 1, 2, 2, 3))
        name = [(rng.choice(pool), ("B-" if i == 0 else "I-") + kind) for i in range(size)]
        return name + [("and", "O"), *names(kind)] if rng.random() < 0.2 else name

    def chunk() -> list[tuple[str, str]]:
        kind, roll = rng.choice(tuple(TRIGGERS)), rng.random()
        if roll < 0.15:
            return noun_phrase()
        if roll < 0.30:  # pronoun and verb
            return [(rng.choice(PRONOUNS), "O"), (rng.choice(pool), "O")]
        if roll < 0.75:  # trigger, then a name or a common noun
            rest = noun_phrase() if rng.random() < 0.2 else modified(names(kind))
            return [(rng.choice(TRIGGERS[kind]), "O"), *rest]
        if roll < 0.95:  # "with", then a name and its type suffix, or a common noun
            rest = noun_phrase() if rng.random() < 0.2 else names(kind) + [(rng.choice(SUFFIXES[kind]), "O")]
            return [("with", "O"), *rest]
        return [(rng.choice(CONNECTORS), "O")]

    while True:
        length, pairs = rng.randint(min_length, max_length), []
        while len(pairs) < length:
            pairs += chunk()
        if len(pairs) <= max_length:
            yield {"tokens": [w for w, _ in pairs], "tags": [t for _, t in pairs]}


# --- classification ---------------------------------------------------------------------------

COPULAS = ("is", "was", "seems", "felt")
INTENSIFIERS = ("very", "really", "so")
NEGATIONS = ("not", "never")


def classification(
    rng: random.Random,
    *,
    n_nouns: int = 60,
    n_sentiment: int = 40,
    n_neutral: int = 30,
    max_clauses: int = 3,
    min_length: int = 5,
    max_length: int = 25,
) -> Iterator[dict]:
    """Sentiment (positive, negative, neutral) decided by negation scope, intensifiers and "but".

    A text is one to ``max_clauses`` clauses joined by "," or "but", each like
    "the [very] [ADJ] NOUN is [not] [very] ADJ [and|or [not] [very] ADJ]". Each
    sentiment adjective scores +1 or -1, twice that after an intensifier, and
    flips sign when a negation comes before it in its clause (the scope ends at
    the clause boundary, so an adjective before "not" keeps its sign). After
    "but", only the clauses that follow count. The label is the sign of the
    score, neutral at zero; labels are drawn balanced.
    """
    _require(n_nouns >= 1, f"n_nouns must be at least 1, not {n_nouns}.")
    _require(n_sentiment >= 1, f"n_sentiment must be at least 1, not {n_sentiment}.")
    _require(n_neutral >= 1, f"n_neutral must be at least 1, not {n_neutral}.")
    _require(max_clauses >= 1, f"max_clauses must be at least 1, not {max_clauses}.")
    _require_lengths(min_length, max_length)
    words = _lexicon("classification", nouns=n_nouns, positive=n_sentiment, negative=n_sentiment, neutral=n_neutral)
    polarity = {**dict.fromkeys(words["positive"], 1), **dict.fromkeys(words["negative"], -1)}
    adjectives = words["positive"] + words["negative"] + words["neutral"]

    def adjective() -> list[str]:
        return [rng.choice(INTENSIFIERS)] * (rng.random() < 0.3) + [rng.choice(adjectives)]

    def clause() -> list[str]:
        subject = ["the", *(adjective() if rng.random() < 0.4 else []), rng.choice(words["nouns"])]
        predicate = [rng.choice(NEGATIONS)] * (rng.random() < 0.4) + adjective()
        if rng.random() < 0.4:
            predicate += [rng.choice(("and", "or"))] + [rng.choice(NEGATIONS)] * (rng.random() < 0.2) + adjective()
        return subject + [rng.choice(COPULAS)] + predicate

    labels = ("positive", "negative", "neutral")
    for wanted in _balanced(rng, labels):
        for _ in range(1000):
            tokens = clause()
            for _ in range(rng.randint(1, max_clauses) - 1):
                tokens += [rng.choice((",", "but"))] + clause()
            score = sentiment_score(tokens, polarity)
            label = labels[0] if score > 0 else labels[1] if score < 0 else labels[2]
            if label == wanted and min_length <= len(tokens) <= max_length:
                yield {"text": " ".join(tokens), "label": label}
                break
        else:
            raise OptionError(
                f"no {wanted} text of {min_length} to {max_length} words could be made; widen the length range."
            )


def sentiment_score(tokens: list[str], polarity: dict[str, int]) -> int:
    """Sum of sentiment adjectives, read left to right, counting only what follows the last "but"."""
    score, negated, weight = 0, False, 1
    for token in tokens:
        if token in (",", "but"):
            negated = False
            score = 0 if token == "but" else score
        elif token in NEGATIONS:
            negated = True
        elif token in INTENSIFIERS:
            weight = 2
        elif token in polarity:
            score += polarity[token] * weight * (-1 if negated else 1)
        if token not in INTENSIFIERS:
            weight = 1
    return score


# --- pair -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """What a pair sentence states: who does what to whom, with which modifiers (None: absent); negated: no such event."""

    agent: str
    agent_adj: str | None
    verb: str
    patient: str
    patient_adj: str | None
    place: str | None
    negated: bool

    def entails(self, other: Event) -> bool:
        """Roles equal and every modifier of the more general event also in the other (general: other if positive)."""
        general, specific = (self, other) if self.negated else (other, self)
        return (self.agent, self.patient) == (other.agent, other.patient) and all(
            g is None or g == s for g, s in zip(general.modifiers(), specific.modifiers())
        )

    def modifiers(self) -> tuple:
        return self.agent_adj, self.patient_adj, self.place


def relation(a: Event, b: Event) -> str:
    """Entailment if A entails B; contradiction if one denies an event the other entails; else neutral."""
    if a.negated == b.negated:
        return "entailment" if a.entails(b) else "neutral"
    positive, negated = (b, a) if a.negated else (a, b)
    return "contradiction" if positive.entails(replace(negated, negated=False)) else "neutral"


def pair(
    rng: random.Random,
    *,
    n_nouns: int = 60,
    n_verbs: int = 30,
    n_adjectives: int = 40,
    passive_rate: float = 0.4,
    negation_rate: float = 0.35,
    reorder_rate: float = 0.75,
) -> Iterator[dict]:
    """Entailment, contradiction or neutral between two simple sentences; word order carries the roles.

    Sentence A states an ``Event``: "a [ADJ] AGENT VERBs a [ADJ] PATIENT [in the
    PLACE]", maybe negated ("does not VERB": no such event), in the active or the
    passive voice ("a PATIENT is VERBd by a AGENT"). B restates it in either voice
    with modifiers dropped or added and the negation toggled. With equal
    negation B is entailed when it is more general (fewer modifiers) for a
    positive A, or more specific for a negated A; with negation toggled the pair
    contradicts when the negated sentence is the more general one; anything
    else, including other roles, is neutral. Labels are drawn balanced, and a
    share ``reorder_rate`` of the neutral pairs is an entailed or contradicted B
    with the same words in other roles (agent and patient swapped, or their
    adjectives swapped), so the bags of words cannot tell it from the original.
    """
    _require(n_nouns >= 2, f"n_nouns must be at least 2, not {n_nouns}.")
    _require(n_verbs >= 1, f"n_verbs must be at least 1, not {n_verbs}.")
    _require(n_adjectives >= 1, f"n_adjectives must be at least 1, not {n_adjectives}.")
    rates = {"passive_rate": passive_rate, "negation_rate": negation_rate, "reorder_rate": reorder_rate}
    for name, rate in rates.items():
        _require(0.0 <= rate <= 1.0, f"{name} must be between 0 and 1, not {rate}.")
    words = _lexicon("pair", nouns=n_nouns, verbs=n_verbs, adjectives=n_adjectives)
    nouns, adjectives = words["nouns"], words["adjectives"]

    def maybe(choices: list[str], rate: float) -> str | None:
        return rng.choice(choices) if rng.random() < rate else None

    def changed(modifier: str | None, choices: list[str]) -> str | None:
        return (modifier if rng.random() < 0.6 else None) if modifier else maybe(choices, 0.12)

    def restated(a: Event) -> Event:  # modifiers dropped or added, negation toggled, sometimes
        return replace(
            a,
            agent_adj=changed(a.agent_adj, adjectives),
            patient_adj=changed(a.patient_adj, adjectives),
            place=changed(a.place, nouns),
            negated=a.negated != (rng.random() < 0.4),
        )

    def reordered(b: Event) -> Event:  # the same words in other roles
        if rng.random() < 0.5:
            return replace(b, agent=b.patient, agent_adj=b.patient_adj, patient=b.agent, patient_adj=b.agent_adj)
        return replace(b, agent_adj=b.patient_adj, patient_adj=b.agent_adj)

    def drawn(wanted: str) -> tuple[Event, Event]:
        reorder = wanted == "neutral" and rng.random() < reorder_rate
        while True:
            agent, patient = rng.sample(nouns, 2)
            a = Event(
                agent,
                maybe(adjectives, 0.5),
                rng.choice(words["verbs"]),
                patient,
                maybe(adjectives, 0.5),
                maybe(nouns, 0.3),
                rng.random() < negation_rate,
            )
            b = restated(a)
            if reorder and relation(a, b) != "neutral":
                b = reordered(b)
            elif reorder:
                continue
            if relation(a, b) == wanted:
                return a, b

    def sentence(e: Event) -> str:
        subject, obj = ["a", e.agent_adj, e.agent], ["a", e.patient_adj, e.patient]
        if rng.random() < passive_rate:
            tokens = obj + ["is", "not" if e.negated else None, e.verb + "d", "by"] + subject
        else:
            tokens = subject + (["does", "not", e.verb] if e.negated else [e.verb + "s"]) + obj
        tokens += ["in", "the", e.place] if e.place else []
        return " ".join(t for t in tokens if t)

    for wanted in _balanced(rng, ("entailment", "contradiction", "neutral")):
        a, b = drawn(wanted)
        yield {"text_a": sentence(a), "text_b": sentence(b), "label": relation(a, b)}


# --- generation -------------------------------------------------------------------------------

CLAUSE_LINKS = ("because", "when", "while")
PREPOSITIONS = ("in", "near", "with", "under")
GENDERS, NUMBERS = ("m", "f"), ("sg", "pl")


def generation(
    rng: random.Random,
    *,
    n_nouns: int = 80,
    n_verbs: int = 40,
    n_adjectives: int = 40,
    subordinate_rate: float = 0.5,
    modifier_rate: float = 0.4,
) -> Iterator[dict]:
    """Translation between two made-up languages with disjoint vocabularies, reordering and agreement.

    Source (English-like): "DET ADJ* NOUN VERB DET ADJ* NOUN [PREP NP] [because|
    when|while CLAUSE]", nouns singular or plural ("-s"), the verb marked for the
    subject's number; ``modifier_rate`` is the chance of adjectives on a noun and
    of a prepositional phrase. Target: words map one to one by lexicon, but
    adjectives follow their noun, prepositions become postpositions, the verb of
    a subordinate clause moves to its end, and determiners, adjectives and
    verbs agree with the gender (a property of each target noun, invisible in
    the source) and number of their noun or subject. So the target cannot be
    made word by word, and copying the source shares no word with it.
    """
    _require(n_nouns >= 1, f"n_nouns must be at least 1, not {n_nouns}.")
    _require(n_verbs >= 1, f"n_verbs must be at least 1, not {n_verbs}.")
    _require(n_adjectives >= 1, f"n_adjectives must be at least 1, not {n_adjectives}.")
    _require(0.0 <= subordinate_rate <= 1.0, f"subordinate_rate must be between 0 and 1, not {subordinate_rate}.")
    _require(0.0 <= modifier_rate <= 1.0, f"modifier_rate must be between 0 and 1, not {modifier_rate}.")
    src = _lexicon("generation-source", nouns=n_nouns, verbs=n_verbs, adjectives=n_adjectives)
    tgt = _lexicon(
        "generation-target",
        "cfhjqvwxz",
        "aeiouy",
        nouns=n_nouns,
        verbs=n_verbs,
        adjectives=n_adjectives,
        links=len(CLAUSE_LINKS),
        postpositions=len(PREPOSITIONS),
        determiners=8,
    )
    gender = dict(zip(src["nouns"], random.Random("fxbench-gender").choices(GENDERS, k=n_nouns)))
    translate = {s: t for kind in ("nouns", "verbs", "adjectives") for s, t in zip(src[kind], tgt[kind])}
    translate |= dict(zip(CLAUSE_LINKS, tgt["links"])) | dict(zip(PREPOSITIONS, tgt["postpositions"]))
    determiner = dict(zip([(d, g, n) for d in ("def", "indef") for g in GENDERS for n in NUMBERS], tgt["determiners"]))
    ending = {("m", "sg"): "o", ("f", "sg"): "a", ("m", "pl"): "oi", ("f", "pl"): "ai"}
    verb_ending = {("m", "sg"): "ek", ("f", "sg"): "ak", ("m", "pl"): "en", ("f", "pl"): "an"}

    def noun_phrase() -> tuple[list[str], list[str], tuple[str, str]]:
        noun, number, definite = rng.choice(src["nouns"]), rng.choice(NUMBERS), rng.random() < 0.5
        adjs = rng.sample(src["adjectives"], rng.choice((1, 1, 2))) if rng.random() < modifier_rate else []
        agreement = (gender[noun], number)
        source = ["the" if definite else "a" if number == "sg" else "some", *adjs, noun + "s" * (number == "pl")]
        target = [
            determiner[("def" if definite else "indef", *agreement)],
            translate[noun] + "n" * (number == "pl"),
            *(translate[a] + ending[agreement] for a in adjs),
        ]
        return source, target, agreement

    def clause(subordinate: bool) -> tuple[list[str], list[str]]:
        (s_src, s_tgt, agreement), (o_src, o_tgt, _) = noun_phrase(), noun_phrase()
        verb = rng.choice(src["verbs"])
        source, target = s_src + [verb + "s" * (agreement[1] == "sg")] + o_src, s_tgt + o_tgt
        if rng.random() < modifier_rate:
            prep, (p_src, p_tgt, _) = rng.choice(PREPOSITIONS), noun_phrase()
            source, target = source + [prep] + p_src, target + p_tgt + [translate[prep]]
        verb_tgt = translate[verb] + verb_ending[agreement]
        target = target + [verb_tgt] if subordinate else target[: len(s_tgt)] + [verb_tgt] + target[len(s_tgt) :]
        return source, target

    while True:
        source, target = clause(subordinate=False)
        if rng.random() < subordinate_rate:
            link = rng.choice(CLAUSE_LINKS)
            sub_src, sub_tgt = clause(subordinate=True)
            source, target = source + [link] + sub_src, target + [translate[link]] + sub_tgt
        yield {"source": " ".join(source), "target": " ".join(target)}


# --- the data set -----------------------------------------------------------------------------

GENERATORS: dict[str, Callable[..., Iterator[dict]]] = {
    "labelling": labelling,
    "classification": classification,
    "pair": pair,
    "generation": generation,
}
_STRING = datasets.Value("string")
_FEATURES = {
    "labelling": {"tokens": datasets.Sequence(_STRING), "tags": datasets.Sequence(_STRING)},
    "classification": {"text": _STRING, "label": _STRING},
    "pair": {"text_a": _STRING, "text_b": _STRING, "label": _STRING},
    "generation": {"source": _STRING, "target": _STRING},
}


def generate(
    task_type: str, n_train: int = 6000, n_validation: int = 500, n_test: int = 500, seed: int = 0, **options
) -> datasets.DatasetDict:
    """The embedded task of ``task_type``: disjoint train/validation/test splits, the same for the same seed.

    Test is drawn first, then validation, then train, each from its own random
    stream and skipping any input already drawn, so test and validation do not
    change with ``n_train``. ``options`` are the generator's keyword arguments.
    """
    _require(
        task_type in GENERATORS, f"task type {task_type!r} has no embedded task; choose one of {', '.join(GENERATORS)}."
    )
    _check_options(task_type, options)
    sizes = {"train": n_train, "validation": n_validation, "test": n_test}
    for split, size in sizes.items():
        _require(
            isinstance(size, int) and not isinstance(size, bool) and size >= 1,
            f"n_{split} must be a positive integer, not {size!r}.",
        )
    inputs = TASK_TYPES[task_type][:-1]  # every column but the label decides whether two examples are the same
    seen, splits = set(), {}
    for split in reversed(SPLITS):
        stream = GENERATORS[task_type](random.Random(f"fxbench/{task_type}/{seed}/{split}"), **options)
        rows, misses = [], 0
        while len(rows) < sizes[split]:
            row = next(stream)
            key = tuple(str(row[c]) for c in inputs)
            misses = 0 if key not in seen else misses + 1
            if not misses:
                seen.add(key)
                rows.append(row)
            _require(
                misses < 1000,
                f"only {len(rows)} distinct {task_type} examples were found for the {split} "
                "split (1000 draws in a row repeated earlier ones); ask for fewer or enlarge the vocabulary.",
            )
        columns = {c: [r[c] for r in rows] for c in TASK_TYPES[task_type]}
        splits[split] = datasets.Dataset.from_dict(columns, features=datasets.Features(_FEATURES[task_type]))
    return datasets.DatasetDict({split: splits[split] for split in SPLITS})


def _check_options(task_type: str, options: dict) -> None:
    """Every option is a keyword of the task's generator, of the type of its default."""
    params = {k: p for k, p in inspect.signature(GENERATORS[task_type]).parameters.items() if k != "rng"}
    for name, value in options.items():
        _require(
            name in params,
            f"{name} is not an option of the embedded {task_type} task; its options are {', '.join(params)}.",
        )
        expected = type(params[name].default)
        ok = isinstance(value, (int, float) if expected is float else expected) and not isinstance(value, bool)
        _require(ok, f"{name} must be {'a number' if expected is float else 'an integer'}, not {value!r}.")


# --- baselines --------------------------------------------------------------------------------


def _task_type(dataset_dict: datasets.DatasetDict) -> str:
    columns = set(dataset_dict["train"].column_names)
    return next(t for t, cols in TASK_TYPES.items() if set(cols) <= columns)


def majority_baseline(dataset_dict: datasets.DatasetDict) -> float:
    """Test accuracy of always predicting the most frequent training label (per token for labelling)."""
    task_type = _task_type(dataset_dict)
    _require(task_type != "generation", "generation has no majority baseline; score copying the source with BLEU.")
    if task_type == "labelling":
        train = Counter(t for tags in dataset_dict["train"]["tags"] for t in tags)
        test = [t for tags in dataset_dict["test"]["tags"] for t in tags]
    else:
        train, test = Counter(dataset_dict["train"]["label"]), dataset_dict["test"]["label"]
    majority = train.most_common(1)[0][0]
    return sum(t == majority for t in test) / len(test)


def unigram_baseline(dataset_dict: datasets.DatasetDict) -> float:
    """Labelling: test token accuracy of each word's most frequent training tag (the overall one for unseen words)."""
    _require(_task_type(dataset_dict) == "labelling", "the unigram baseline is for labelling data.")
    counts: dict[str, Counter] = {}
    for tokens, tags in zip(dataset_dict["train"]["tokens"], dataset_dict["train"]["tags"]):
        for token, tag in zip(tokens, tags):
            counts.setdefault(token, Counter())[tag] += 1
    overall = sum(counts.values(), Counter()).most_common(1)[0][0]
    best = {token: c.most_common(1)[0][0] for token, c in counts.items()}
    test = dataset_dict["test"]
    pairs = [(best.get(w, overall), t) for row in test for w, t in zip(row["tokens"], row["tags"])]
    return sum(p == t for p, t in pairs) / len(pairs)
