"""Long-distance dependency probes: seeded generators whose difficulty is one number per example.

Each probe draws examples on the fly, with the same tensors for the same seed.
Every example carries its own ``distance``, so a harness can train on a mix of
distances and report accuracy (or MSE) per distance bucket. Rows are right
padded: positions at or past ``lengths`` hold input 0 (or 0.0 features) and
target -100 (or NaN). This module imports torch, numpy and the standard library only.

==============  =========================================  =====================================
probe           ``distance``                               chance
==============  =========================================  =====================================
agreement       verb position - subject head position      accuracy 0.5
copy            the paper's T (reach is T + 10)            loss 10 ln 8 / (T + 20), accuracy 1/8
adding          sequence length T                          mse 1/6 (always predict 1)
listops         nesting depth of the expression            majority-class accuracy, uniform 0.1
recall          query position - queried value position    accuracy 1 / n_values
mqar            key-value pairs stored (each key queried)  accuracy 1 / n_values
selective_copy  span the content is scattered over         accuracy 1 / n_symbols
parity          sequence length T (tokens)                 accuracy 1 / modulus (0.5 for parity)
==============  =========================================  =====================================
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

IGNORE = -100  # target at positions that have none (token readout, classes)


@dataclass
class ProbeSet:
    """A batch of probe examples; shapes are given for N examples padded to T positions."""

    inputs: torch.Tensor  # (N, T) int64 ids, 0 = padding; or (N, T, F) float32 features
    lengths: torch.Tensor  # (N,) int64 real positions per row, real positions first
    targets: torch.Tensor  # token readout: (N, T) int64 with -100, or float32 with NaN; pool: (N,) int64
    distance: torch.Tensor  # (N,) int64 each example's difficulty (what it measures: see the probe)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # per-example extras, first axis N


class Probe(Protocol):
    name: str
    vocab_size: int  # ids 0..vocab_size-1, 0 = padding; 0 for feature inputs
    n_features: int  # F for feature inputs, else 0
    n_classes: int  # 0 for regression
    causal: bool  # the task only makes sense for an encoder that runs causally
    readout: str  # "token" or "pool"
    metric: str  # "accuracy" or "mse"
    distance_axis: str  # what an example's ``distance`` measures, as an axis label

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet: ...

    def chance(self, distance: int) -> dict[str, float]: ...

    def default_distances(self) -> list[int]: ...


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_int(probe: str, option: str, value, minimum: int) -> None:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum
    _require(ok, f"{probe} option {option} must be an integer >= {minimum}, got {value!r}.")


def _draw_distances(
    probe: str, n: int, distances: Sequence[int], seed: int, allowed
) -> tuple[np.random.Generator, np.ndarray]:
    """The seeded generator and n distances drawn uniformly from `distances`, each checked by `allowed`."""
    _check_int(probe, "n", n, 1)
    distances = list(distances)
    _require(len(distances) > 0, f"{probe} needs at least one distance.")
    for d in distances:
        whole = isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
        problem = allowed(d) if whole else "it must be a positive integer"
        _require(problem is None, f"{probe} distance {d!r} is not valid: {problem}.")
    rng = np.random.default_rng(seed)
    return rng, rng.choice(np.asarray(distances, dtype=np.int64), size=n)


def _pad_rows(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token rows with 0: ids (N, T) int64 and lengths (N,) int64."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    ids = np.zeros((len(rows), lengths.max()), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return torch.from_numpy(ids), torch.from_numpy(lengths)


def _targets_at(shape: tuple[int, int], positions: np.ndarray, classes: np.ndarray) -> torch.Tensor:
    """(N, T) int64 targets: classes[i] at positions[i] in row i, -100 elsewhere."""
    targets = np.full(shape, IGNORE, dtype=np.int64)
    targets[np.arange(shape[0]), positions] = classes
    return torch.from_numpy(targets)


# ---------------------------------------------------------------- agreement

SINGULAR = ["dog", "cat", "girl", "boy", "car", "tree", "house", "bird", "teacher", "key"]
PLURAL = [w + "s" for w in SINGULAR]
NEUTRAL_NOUNS = ["sheep", "fish", "deer", "aircraft"]  # same form in both numbers: no cue
DETERMINERS = ["the", "my", "his", "her", "our"]
ADJECTIVES = ["old", "big", "small", "red", "happy", "tall", "quiet", "young"]
PREPOSITIONS = ["near", "behind", "with", "beside", "under", "of"]
RC_VERBS = ["saw", "liked", "followed", "helped", "met"]  # past tense: number neutral
ADVERBS = ["often", "really", "never", "always", "still", "also"]
THAT, COMMA, VERB, STOP = "that", ",", "<verb>", "."
NEUTRAL = 2  # noun "number" of NEUTRAL_NOUNS


@functools.cache
def _noun_count_pairs(max_attractors: int, max_nouns: int) -> tuple[tuple[int, int], ...]:
    """(attractors, agreeing) pairs up to max_attractors each and max_nouns together; symmetric on purpose."""
    k = range(max_attractors + 1)
    return tuple((a, b) for a in k for b in k if a + b <= max_nouns)


class Agreement:
    """Subject-verb agreement across attractors (after Linzen et al. 2016; Tang et al. 2018).

    A sentence of a small grammar::

        [PREP DET ADJ? NOUN ","] DET ADJ? NOUN modifier* ADVERB* <verb> [DET NOUN] ADVERB* "."
        modifier := PREP DET ADJ* NOUN | "that" RC_VERB DET ADJ* NOUN | "that" DET ADJ* NOUN RC_VERB

    The leading phrase's noun has random number, so the subject is not always the
    first noun. Between the subject head and <verb> lie exactly distance - 1 tokens
    holding ``attractors`` nouns of the opposite number (at most max_attractors and
    (distance - 1) // 3, a phrase per noun), on average as many nouns of the
    subject's number (so counting nouns gives nothing away), and number-neutral
    nouns (sheep, fish) as filler. The target, at <verb> only, is the subject's
    number (0 singular, 1 plural), balanced exactly; nothing after <verb> depends
    on it. ``distance`` = <verb> position - subject head position;
    ``extra["attractors"]`` counts the opposite-number nouns between the two.
    """

    name = "agreement"
    distance_axis = "distance d: verb - subject head (tokens)"  # what ``distance`` measures, for plots and tables
    n_features = 0
    n_classes = 2
    causal = False
    readout = "token"
    metric = "accuracy"

    def __init__(self, max_attractors: int = 3, max_tail: int = 6):
        _check_int(self.name, "max_attractors", max_attractors, 0)
        _check_int(self.name, "max_tail", max_tail, 3)
        self.max_attractors, self.max_tail = max_attractors, max_tail
        groups = [SINGULAR, PLURAL, NEUTRAL_NOUNS, DETERMINERS, ADJECTIVES, PREPOSITIONS, RC_VERBS, ADVERBS]
        self.words = ["<pad>", *(word for group in groups for word in group), THAT, COMMA, VERB, STOP]  # id -> word
        self.vocab_size = len(self.words)
        ids = {w: i for i, w in enumerate(self.words)}
        self._nouns = [[ids[w] for w in group] for group in (SINGULAR, PLURAL, NEUTRAL_NOUNS)]
        self._det, self._adj, self._prep, self._rc_verb, self._adverb = (
            [ids[w] for w in group] for group in (DETERMINERS, ADJECTIVES, PREPOSITIONS, RC_VERBS, ADVERBS)
        )
        self._that, self._comma, self._verb, self._stop = ids[THAT], ids[COMMA], ids[VERB], ids[STOP]

    def default_distances(self) -> list[int]:
        return [1, 2, 4, 8, 16, 32, 64, 128]

    def chance(self, distance: int) -> dict[str, float]:
        return {"accuracy": 0.5}

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet:
        rng, distance = _draw_distances(self.name, n, distances, seed, lambda d: None)
        number = rng.permutation(np.arange(n) % 2)  # balanced classes
        rows, verb_at, attractors = [], np.zeros(n, np.int64), np.zeros(n, np.int64)
        for i in range(n):
            tokens, subject, attractors[i] = self._sentence(rng, int(number[i]), int(distance[i]))
            verb_at[i] = subject + distance[i]
            rows.append(tokens)
        inputs, lengths = _pad_rows(rows)
        targets = _targets_at(tuple(inputs.shape), verb_at, number)
        extra = {"attractors": torch.from_numpy(attractors)}
        return ProbeSet(inputs, lengths, targets, torch.from_numpy(distance), extra)

    def _sentence(self, rng: np.random.Generator, number: int, distance: int) -> tuple[list[int], int, int]:
        """Token ids, subject head position and attractor count of one sentence."""

        def pick(ids: list[int]) -> int:
            return ids[rng.integers(len(ids))]

        def noun_phrase(noun_number: int, n_adjectives: int) -> list[int]:
            return [pick(self._det), *(pick(self._adj) for _ in range(n_adjectives)), pick(self._nouns[noun_number])]

        tokens = []
        if rng.random() < 0.5:
            tokens += [pick(self._prep), *noun_phrase(int(rng.integers(2)), int(rng.integers(2))), self._comma]
        tokens += noun_phrase(number, int(rng.integers(2)))
        subject = len(tokens) - 1

        room = distance - 1  # tokens strictly between subject head and verb
        pairs = _noun_count_pairs(self.max_attractors, room // 3)
        attractors, agreeing = pairs[rng.integers(len(pairs))]
        free = room - 3 * (attractors + agreeing)
        neutral = int(rng.integers(free // 6, free // 3 + 1))
        kinds = rng.permutation([1 - number] * attractors + [number] * agreeing + [NEUTRAL] * neutral)
        slack = room - 3 * len(kinds)  # a prepositional phrase takes 3 tokens, a relative clause 4
        forms = []
        for _ in kinds:
            forms.append(int(rng.integers(3)) if slack > 0 else 0)
            slack -= forms[-1] > 0
        extra_words = rng.multinomial(slack, np.full(len(kinds) + 1, 1 / (len(kinds) + 1)))
        for kind, form, n_adjectives in zip(kinds, forms, extra_words):
            phrase = noun_phrase(int(kind), int(n_adjectives))
            if form == 0:
                tokens += [pick(self._prep), *phrase]
            elif form == 1:
                tokens += [self._that, pick(self._rc_verb), *phrase]
            else:
                tokens += [self._that, *phrase, pick(self._rc_verb)]
        tokens += [pick(self._adverb) for _ in range(extra_words[-1])]
        tokens.append(self._verb)

        tail = noun_phrase(int(rng.integers(3)), 0) if rng.random() < 0.5 else []  # random number: no cue
        tail += [pick(self._adverb) for _ in range(rng.integers(self.max_tail - len(tail)))]
        return tokens + tail + [self._stop], subject, attractors


# ---------------------------------------------------------------- copy memory


class CopyMemory:
    """Copy memory exactly as Bai, Kolter & Koltun (2018) generate it, ids shifted by one.

    Paper values per row: 10 digits from 1..8, T-1 blanks (0), then 11 nines (the
    first is the delimiter), T+20 in all. Input id = value + 1 (0 stays padding);
    target class = the paper's output: 0 (blank) everywhere except the last 10
    positions, which repeat the 10 digits. ``distance`` is the paper's T; each digit
    must be carried T + 10 positions. ``extra["answer_mask"]``, (N, L) bool like
    the targets, marks the 10 answer positions, where digit accuracy is measured.
    """

    name = "copy"
    distance_axis = "delay T (tokens)"  # what ``distance`` measures, for plots and tables
    vocab_size = 11  # pad, blank, digits 1..8, nine
    n_features = 0
    n_classes = 9  # blank, digits 1..8
    causal = True
    readout = "token"
    metric = "accuracy"
    n_digits = 10

    def default_distances(self) -> list[int]:
        return [8, 16, 32, 64, 128]

    def chance(self, distance: int) -> dict[str, float]:
        """The paper's baseline: blanks right, uniform over 8 digits at the 10 answers (loss per position)."""
        return {"loss": self.n_digits * math.log(8) / (distance + 20), "accuracy": 1 / 8}

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet:
        rng, T = _draw_distances(self.name, n, distances, seed, lambda d: None)
        digits = rng.integers(1, 9, size=(n, self.n_digits))
        lengths = T + 2 * self.n_digits
        position = np.arange(lengths.max())[None, :]  # (1, L)
        real = position < lengths[:, None]  # (N, L)
        answer = real & (position >= (T + self.n_digits)[:, None])
        inputs = np.where(real, 1, 0)
        inputs[:, : self.n_digits] = digits + 1
        inputs[real & (position >= (T + self.n_digits - 1)[:, None])] = 10
        targets = np.where(real, 0, IGNORE)
        targets[answer] = digits.ravel()  # each row has exactly 10 answer positions, in order
        return ProbeSet(
            torch.from_numpy(inputs.astype(np.int64)),
            torch.from_numpy(lengths),
            torch.from_numpy(targets.astype(np.int64)),
            torch.from_numpy(T),
            {"answer_mask": torch.from_numpy(answer)},
        )


# ---------------------------------------------------------------- adding problem


class Adding:
    """The adding problem (Hochreiter & Schmidhuber 1997; as run by Bai, Kolter & Koltun 2018).

    T steps of 2 features: a value uniform in [0, 1) and a marker that is 1 at two
    steps, one in the first half [0, T//2) and one in the second [T//2, T) (the
    halves convention of Le et al. 2015; the TCN code draws both anywhere). Target:
    the sum of the two marked values, read at the last step. ``distance`` = T; the
    first marker lies between T//2 and T-1 steps before the readout. Chance: always
    predicting 1, the mean of the sum, gives MSE = Var(U1 + U2) = 1/6.
    """

    name = "adding"
    distance_axis = "sequence length T (tokens)"  # what ``distance`` measures, for plots and tables
    vocab_size = 0
    n_features = 2
    n_classes = 0
    causal = True
    readout = "token"
    metric = "mse"

    def default_distances(self) -> list[int]:
        return [8, 16, 32, 64, 128]

    def chance(self, distance: int) -> dict[str, float]:
        return {"mse": 1 / 6}

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet:
        rng, T = _draw_distances(self.name, n, distances, seed, lambda d: None if d >= 2 else "it must be at least 2")
        rows = np.arange(n)
        real = np.arange(T.max())[None, :] < T[:, None]  # (N, T)
        values = np.where(real, rng.random(real.shape, dtype=np.float32), np.float32(0))
        half = T // 2
        first = (rng.random(n) * half).astype(np.int64)
        second = half + (rng.random(n) * (T - half)).astype(np.int64)
        markers = np.zeros_like(values)
        markers[rows, first] = markers[rows, second] = 1
        targets = np.full(values.shape, np.nan, dtype=np.float32)
        targets[rows, T - 1] = values[rows, first] + values[rows, second]
        inputs = np.stack([values, markers], axis=-1)  # (N, T, 2)
        return ProbeSet(torch.from_numpy(inputs), torch.from_numpy(T), torch.from_numpy(targets), torch.from_numpy(T))


# ---------------------------------------------------------------- listops


def _lra_median(args: list[int]) -> int:
    """LRA's ``int(np.median(args))``: for an even count, the mean of the two middle values, rounded down."""
    s = sorted(args)
    return (s[(len(s) - 1) // 2] + s[len(s) // 2]) // 2


OPERATORS = {"[MAX": max, "[MIN": min, "[MED": _lra_median, "[SM": lambda args: sum(args) % 10}
OPERATOR_P = 0.25  # LRA's VALUE_P: an argument is a nested expression with this probability
CHANCE_SAMPLE, CHANCE_SEED = 10_000, 0  # majority share to about +-0.003
MAX_TRIES = 1000  # draws per example before a too-small max_length is reported


class ListOps:
    """ListOps as generated for the Long Range Arena (Tay et al. 2020; Nangia & Bowman 2018).

    Tokens: digits 0..9, operators "[MAX", "[MIN", "[MED", "[SM" and the closing "]"
    (LRA writes the tree with parentheses too, and its tokenizer drops every
    bracket; we keep "]" so the structure is in the input). Each operator takes
    2..max_args arguments; an argument is a nested expression with probability 0.25
    (LRA's rule), and one argument path is forced down so the nesting depth is
    exactly ``distance``. Rows longer than max_length tokens are redrawn. MED
    follows LRA's int(np.median): even counts average the two middle values and
    round down; SM is the sum mod 10. Label: the value, pooled. ``extra["length"]``
    is the token count. Chance: the majority label's share, estimated once per
    depth from 10,000 examples drawn with seed 0.
    """

    name = "listops"
    distance_axis = "nesting depth"  # what ``distance`` measures, for plots and tables
    n_features = 0
    n_classes = 10
    causal = False
    readout = "pool"
    metric = "accuracy"

    def __init__(self, max_args: int = 5, max_length: int = 160):
        _check_int(self.name, "max_args", max_args, 2)
        _check_int(self.name, "max_length", max_length, 4)
        self.max_args, self.max_length = max_args, max_length
        self.words = ["<pad>", *map(str, range(10)), *OPERATORS, "]"]  # id -> token
        self.vocab_size = len(self.words)
        self._operators = list(OPERATORS.values())

    def default_distances(self) -> list[int]:
        return [1, 2, 3, 4, 5, 6]

    def chance(self, distance: int) -> dict[str, float]:
        return {"accuracy": _listops_majority(self.max_args, self.max_length, distance), "uniform": 0.1}

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet:
        def allowed(depth):  # the shortest expression of that depth: 3 tokens per level, plus a digit
            return None if 3 * depth + 1 <= self.max_length else f"it needs max_length >= {3 * depth + 1}"

        rng, depth = _draw_distances(self.name, n, distances, seed, allowed)
        rows, labels = [], np.zeros(n, np.int64)
        for i in range(n):
            for _ in range(MAX_TRIES):
                tokens = []
                labels[i] = self._expression(rng, int(depth[i]), True, tokens)
                if len(tokens) <= self.max_length:
                    break
            else:
                raise ValueError(
                    f"listops drew no expression of depth {depth[i]} within max_length={self.max_length} "
                    f"in {MAX_TRIES} tries; raise max_length or lower the depth."
                )
            rows.append(tokens)
        inputs, lengths = _pad_rows(rows)
        return ProbeSet(inputs, lengths, torch.from_numpy(labels), torch.from_numpy(depth), {"length": lengths.clone()})

    def _expression(self, rng: np.random.Generator, depth: int, exact: bool, out: list[int]) -> int:
        """Append an expression nested at most `depth` deep (exactly, when `exact`) to `out`; return its value."""
        if depth == 0 or (not exact and rng.random() >= OPERATOR_P):
            value = int(rng.integers(10))
            out.append(1 + value)  # ids: 0 pad, 1..10 digits, 11..14 operators, 15 "]"
            return value
        operator = int(rng.integers(len(self._operators)))
        n_args = int(rng.integers(2, self.max_args + 1))
        deep = int(rng.integers(n_args)) if exact else -1
        out.append(11 + operator)
        args = [self._expression(rng, depth - 1, i == deep, out) for i in range(n_args)]
        out.append(self.vocab_size - 1)  # "]"
        return self._operators[operator](args)


@functools.cache
def _listops_majority(max_args: int, max_length: int, depth: int) -> float:
    labels = ListOps(max_args, max_length).sample(CHANCE_SAMPLE, [depth], CHANCE_SEED).targets
    return float(torch.bincount(labels, minlength=10).max()) / CHANCE_SAMPLE


# ---------------------------------------------------------------- associative recall


class Recall:
    """Associative recall: key-value pairs, then "?" and one of the keys; predict its value.

    Row: k1 v1 k2 v2 ... kn vn ? kq, keys distinct within the row, values drawn
    independently; the target (value class 0..n_values-1) sits at kq, the last
    position. ``distance`` = position of kq - position of the queried pair's value,
    so it is even: 2 x (pairs from the queried one to the end). The pair count n is
    uniform in [distance/2, max_pairs], so the queried pair's index varies too.
    Chance: 1 / n_values.
    """

    name = "recall"
    distance_axis = "distance d: query - queried value (tokens)"  # what ``distance`` measures, for plots and tables
    n_features = 0
    causal = False
    readout = "token"
    metric = "accuracy"

    def __init__(self, n_keys: int = 64, n_values: int = 16, max_pairs: int = 48):
        _check_int(self.name, "n_keys", n_keys, 1)
        _check_int(self.name, "n_values", n_values, 2)
        _check_int(self.name, "max_pairs", max_pairs, 1)
        _require(max_pairs <= n_keys, f"recall option max_pairs={max_pairs} must not exceed n_keys={n_keys}.")
        self.n_keys, self.n_values, self.max_pairs = n_keys, n_values, max_pairs
        self.n_classes = n_values
        self.words = ["<pad>", *(f"k{i}" for i in range(n_keys)), *(f"v{i}" for i in range(n_values)), "?"]
        self.vocab_size = len(self.words)

    def default_distances(self) -> list[int]:
        return [d for d in (2, 4, 8, 16, 32, 64) if d <= 2 * self.max_pairs]

    def chance(self, distance: int) -> dict[str, float]:
        return {"accuracy": 1 / self.n_values}

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet:
        def allowed(d):
            return None if d % 2 == 0 and d <= 2 * self.max_pairs else f"it must be even and <= {2 * self.max_pairs}"

        rng, distance = _draw_distances(self.name, n, distances, seed, allowed)
        rows, P = np.arange(n), self.max_pairs
        keys = rng.random((n, self.n_keys)).argsort(axis=1)[:, :P]  # (N, P) distinct per row
        values = rng.integers(self.n_values, size=(n, P))
        n_pairs = rng.integers(distance // 2, P + 1)  # (N,), one low bound per row
        queried = n_pairs - distance // 2
        ids = np.zeros((n, 2 * P + 2), dtype=np.int64)
        ids[:, 0 : 2 * P : 2] = 1 + keys
        ids[:, 1 : 2 * P : 2] = 1 + self.n_keys + values
        ids[np.arange(2 * P + 2)[None, :] >= 2 * n_pairs[:, None]] = 0
        ids[rows, 2 * n_pairs] = self.vocab_size - 1  # "?"
        ids[rows, 2 * n_pairs + 1] = 1 + keys[rows, queried]
        lengths = 2 * n_pairs + 2
        ids = ids[:, : lengths.max()]
        targets = _targets_at(ids.shape, lengths - 1, values[rows, queried])
        return ProbeSet(torch.from_numpy(ids), torch.from_numpy(lengths), targets, torch.from_numpy(distance))


# ---------------------------------------------------------------- multi-query associative recall


class MQAR:
    """Multi-query associative recall as Zoology (Arora et al. 2023) sets it: key-value pairs, then queries.

    Row: k1 v1 ... kn vn, then ``n`` queries, each a key of the row (every key once, in a random order);
    the target at each query is that key's value (a class 0..n_values-1). Keys are distinct within a
    row, values independent. Causal, as in the paper: a query sees only what came before it, so a
    recurrent model must hold every pair in its state. ``distance`` = n, the pairs stored (the paper's
    axis); a query's reach varies from 1 to 2n - 1 positions. Chance: 1 / n_values.
    """

    name = "mqar"
    distance_axis = "key-value pairs stored"
    n_features = 0
    causal = True
    readout = "token"
    metric = "accuracy"

    def __init__(self, n_keys: int = 64, n_values: int = 64):
        _check_int(self.name, "n_keys", n_keys, 1)
        _check_int(self.name, "n_values", n_values, 2)
        self.n_keys, self.n_values, self.n_classes = n_keys, n_values, n_values
        self.vocab_size = 1 + n_keys + n_values

    def default_distances(self) -> list[int]:
        return [d for d in (4, 8, 16, 32) if d <= self.n_keys]

    def chance(self, distance: int) -> dict[str, float]:
        return {"accuracy": 1 / self.n_values}

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet:
        def allowed(d):
            return None if d <= self.n_keys else f"it must not exceed n_keys={self.n_keys} (keys are distinct)"

        rng, pairs = _draw_distances(self.name, n, distances, seed, allowed)
        P = int(pairs.max())
        lengths = 3 * pairs
        ids = np.zeros((n, 3 * P), dtype=np.int64)
        targets = np.full((n, 3 * P), IGNORE, dtype=np.int64)
        for i, m in enumerate(pairs):
            keys = rng.permutation(self.n_keys)[:m]
            values = rng.integers(self.n_values, size=m)
            order = rng.permutation(m)
            ids[i, 0 : 2 * m : 2] = 1 + keys
            ids[i, 1 : 2 * m : 2] = 1 + self.n_keys + values
            ids[i, 2 * m : 3 * m] = 1 + keys[order]
            targets[i, 2 * m : 3 * m] = values[order]
        return ProbeSet(
            torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(targets), torch.from_numpy(pairs)
        )


# ---------------------------------------------------------------- selective copying


class SelectiveCopy:
    """Selective copying (Gu and Dao 2023, section 3.1 and Table 1): a few content tokens scattered among
    noise, to be reproduced in order at the end.

    Row: ``distance`` positions of which ``n_content`` (at random places, in order) hold symbols from
    1..n_symbols and the rest a noise token, then a marker and ``n_content`` answer positions that
    repeat the symbols in order. What to keep depends on the content, not on the position, so a
    time-invariant recurrence (a fixed convolution) cannot pick it out; a selective one can. Causal.
    ``distance`` = the span the content is scattered over. Chance: 1 / n_symbols at each answer.
    """

    name = "selective_copy"
    distance_axis = "span of the scattered tokens"
    n_features = 0
    causal = True
    readout = "token"
    metric = "accuracy"

    def __init__(self, n_content: int = 4, n_symbols: int = 8):
        _check_int(self.name, "n_content", n_content, 1)
        _check_int(self.name, "n_symbols", n_symbols, 2)
        self.n_content, self.n_symbols, self.n_classes = n_content, n_symbols, n_symbols
        self.noise, self.marker = n_symbols + 1, n_symbols + 2
        self.vocab_size = n_symbols + 3  # pad, symbols, noise, marker

    def default_distances(self) -> list[int]:
        return [16, 32, 64]

    def chance(self, distance: int) -> dict[str, float]:
        return {"accuracy": 1 / self.n_symbols}

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet:
        k = self.n_content

        def allowed(d):
            return None if d >= k else f"it must be at least n_content={k}"

        rng, span = _draw_distances(self.name, n, distances, seed, allowed)
        lengths = span + 1 + k
        L = int(lengths.max())
        ids = np.zeros((n, L), dtype=np.int64)
        targets = np.full((n, L), IGNORE, dtype=np.int64)
        answer = np.zeros((n, L), dtype=bool)
        for i, d in enumerate(span):
            symbols = rng.integers(1, self.n_symbols + 1, size=k)
            places = np.sort(rng.permutation(d)[:k])
            ids[i, :d] = self.noise
            ids[i, places] = symbols
            ids[i, d] = self.marker
            targets[i, d + 1 : d + 1 + k] = symbols - 1
            answer[i, d + 1 : d + 1 + k] = True
            ids[i, d + 1 : d + 1 + k] = self.noise  # the answer positions read noise; their output is scored
        return ProbeSet(
            torch.from_numpy(ids),
            torch.from_numpy(lengths),
            torch.from_numpy(targets),
            torch.from_numpy(span),
            {"answer_mask": torch.from_numpy(answer)},
        )


# ---------------------------------------------------------------- state tracking


class Parity:
    """State tracking: the running parity of a bit string (the cyclic group Z_m for ``modulus`` m > 2).

    Row: T symbols drawn uniformly from 0..m-1 (ids 1..m); the target at every position is the sum of the
    symbols so far, mod m. A recurrent model carries the state in one cell; attention has to count over the
    whole prefix at every position, and parity is the standard case it needs depth for (Hahn 2020; Delétang
    et al. 2023, "parity check"). Causal, as a running state is. Trained on every position, scored at the last
    one (``extra["answer_mask"]``), whose answer depends on all T symbols. ``distance`` = T. Chance: 1 / m.
    """

    name = "parity"
    distance_axis = "sequence length T (tokens)"
    n_features = 0
    causal = True
    readout = "token"
    metric = "accuracy"

    def __init__(self, modulus: int = 2):
        _check_int(self.name, "modulus", modulus, 2)
        self.modulus = self.n_classes = modulus
        self.vocab_size = 1 + modulus

    def default_distances(self) -> list[int]:
        return [8, 16, 32, 64]

    def chance(self, distance: int) -> dict[str, float]:
        return {"accuracy": 1 / self.modulus}

    def sample(self, n: int, distances: Sequence[int], seed: int) -> ProbeSet:
        rng, T = _draw_distances(self.name, n, distances, seed, lambda d: None)
        position = np.arange(T.max())[None, :]
        real = position < T[:, None]  # (N, L)
        symbols = np.where(real, rng.integers(self.modulus, size=real.shape), 0)
        targets = np.where(real, np.cumsum(symbols, axis=1) % self.modulus, IGNORE)
        return ProbeSet(
            torch.from_numpy(np.where(real, symbols + 1, 0).astype(np.int64)),
            torch.from_numpy(T),
            torch.from_numpy(targets.astype(np.int64)),
            torch.from_numpy(T),
            {"answer_mask": torch.from_numpy(position == (T - 1)[:, None])},
        )


PROBES: dict[str, type[Probe]] = {
    p.name: p for p in (Agreement, CopyMemory, Adding, ListOps, Recall, MQAR, SelectiveCopy, Parity)
}


def build_probe(name: str, **options) -> Probe:
    """The probe `name` with its options; a bad name, option or value is a ValueError in one sentence."""
    if name not in PROBES:
        raise ValueError(f"unknown probe {name!r}; choose one of: {', '.join(PROBES)}.")
    accepted = [p for p in inspect.signature(PROBES[name].__init__).parameters if p not in ("self", "args", "kwargs")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"its options are {', '.join(accepted)}" if accepted else "it takes no options"
        raise ValueError(f"probe {name} has no option {', '.join(unknown)}; {takes}.")
    return PROBES[name](**options)
