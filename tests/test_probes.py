"""The long-distance probes (bench/probes.py): labels re-derived independently, chance baselines, the batch contract.

Labels are checked by code written apart from the generators: ListOps by a stack
evaluator over tokens, agreement by a parser of the grammar over words.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.probes import PLURAL, PREPOSITIONS, PROBES, SINGULAR, build_probe

NAMES = ["agreement", "copy", "adding", "listops", "recall", "mqar", "selective_copy", "parity"]


def words_of(probe, row, length):
    return [probe.words[i] for i in row[:length].tolist()]


def examples(s, *extras):
    """Per example: the input row, its length, target, distance and the named extras."""
    return zip(s.inputs, s.lengths.tolist(), s.targets, s.distance.tolist(), *(s.extra[k] for k in extras))


def test_the_probes_are_registered_with_their_declared_kind():
    assert sorted(PROBES) == sorted(NAMES)
    for name in NAMES:
        probe = build_probe(name)
        assert probe.name == name
        assert probe.readout in ("token", "pool") and probe.metric in ("accuracy", "mse")
        assert (probe.vocab_size > 0) != (probe.n_features > 0)
        assert (probe.metric == "mse") == (probe.n_classes == 0)


def test_only_copy_adding_parity_and_the_two_literature_probes_require_a_causal_encoder():
    causal = {"copy", "adding", "mqar", "selective_copy", "parity"}
    assert {name for name in NAMES if build_probe(name).causal} == causal


# ---------------------------------------------------------------- the batch contract


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_tensors_and_another_seed_does_not(name):
    probe = build_probe(name)
    a, b, c = (probe.sample(64, probe.default_distances(), seed) for seed in (5, 5, 6))
    for field in ("inputs", "lengths", "targets", "distance"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=0, equal_nan=True)
    for key in a.extra:
        assert torch.equal(a.extra[key], b.extra[key])
    assert a.inputs.shape != c.inputs.shape or not torch.equal(a.inputs, c.inputs)


@pytest.mark.parametrize("name", NAMES)
def test_padding_positions_hold_zero_inputs_and_no_targets(name):
    probe = build_probe(name)
    s = probe.sample(97, probe.default_distances(), seed=1)
    N, T = s.inputs.shape[:2]
    real = torch.arange(T)[None, :] < s.lengths[:, None]  # (N, T)
    assert s.lengths.dtype == s.distance.dtype == torch.int64
    assert s.lengths.shape == s.distance.shape == (N,) and int(s.lengths.max()) == T
    if probe.n_features:
        assert s.inputs.dtype == torch.float32 and s.inputs.shape == (N, T, probe.n_features)
        assert (s.inputs[~real] == 0).all()
    else:
        assert s.inputs.dtype == torch.int64
        assert ((s.inputs != 0) == real).all() and int(s.inputs.max()) < probe.vocab_size
    if probe.readout == "pool":
        assert s.targets.shape == (N,) and 0 <= int(s.targets.min()) and int(s.targets.max()) < probe.n_classes
    elif probe.metric == "mse":
        assert s.targets.dtype == torch.float32 and s.targets[~real].isnan().all()
    else:
        assert s.targets.dtype == torch.int64 and (s.targets[~real] == -100).all()
        assert (s.targets[real] < probe.n_classes).all()
    assert all(v.shape[0] == N for v in s.extra.values())


@pytest.mark.parametrize("name", NAMES)
def test_distances_are_drawn_from_the_requested_set(name):
    probe = build_probe(name)
    wanted = probe.default_distances()[1:3]
    s = probe.sample(200, wanted, seed=2)
    assert set(s.distance.tolist()) == set(wanted)


@pytest.mark.parametrize(
    "name, options, named",
    [
        ("agreement", {"max_attractors": -1}, "max_attractors"),
        ("listops", {"max_args": 1}, "max_args"),
        ("recall", {"max_pairs": 100}, "max_pairs"),
        ("recall", {"n_values": "16"}, "n_values"),
        ("copy", {"T": 5}, "T"),
        ("parity", {"modulus": 1}, "modulus"),
    ],
)
def test_a_bad_option_is_a_value_error_naming_it(name, options, named):
    with pytest.raises(ValueError, match=rf"\b{named}\b"):
        build_probe(name, **options)


@pytest.mark.parametrize(
    "name, distance",
    [("recall", 3), ("adding", 1), ("listops", 60), ("copy", 0), ("mqar", 65), ("selective_copy", 3)],
)
def test_a_distance_the_probe_cannot_build_is_a_value_error_naming_it(name, distance):
    with pytest.raises(ValueError, match=f"distance {distance}"):
        build_probe(name).sample(4, [distance], seed=0)


# ---------------------------------------------------------------- agreement

NUMBER = {**{w: 0 for w in SINGULAR}, **{w: 1 for w in PLURAL}}


def parse_agreement(words):
    """(subject number, verb position, verb - subject, attractors) from the words alone, by the grammar."""
    start = words.index(",") + 1 if words[0] in PREPOSITIONS else 0
    subject = next(i for i in range(start, len(words)) if words[i] in NUMBER)
    verb = words.index("<verb>")
    number = NUMBER[words[subject]]
    attractors = sum(NUMBER.get(w, number) != number for w in words[subject + 1 : verb])
    return number, verb, verb - subject, attractors


def test_agreement_labels_distances_and_attractors_match_a_parser_of_the_grammar():
    probe = build_probe("agreement", max_attractors=4)
    s = probe.sample(600, probe.default_distances(), seed=3)
    for row, length, target, distance, attractors in examples(s, "attractors"):
        number, verb, reach, n_attractors = parse_agreement(words_of(probe, row, length))
        assert (target != -100).nonzero().flatten().tolist() == [verb]
        assert (number, reach, n_attractors) == (int(target[verb]), distance, int(attractors))
    assert set(s.extra["attractors"].tolist()) == set(range(5))


def test_agreement_classes_are_balanced():
    s = build_probe("agreement").sample(1001, [8, 32], seed=4)
    assert abs(int((s.targets == 1).sum()) - int((s.targets == 0).sum())) <= 1


def test_agreement_words_after_the_verb_do_not_predict_its_number():
    probe = build_probe("agreement")

    def tails(seed):
        s = probe.sample(3000, probe.default_distances(), seed)
        verb = (s.targets != -100).int().argmax(1)
        label = s.targets.gather(1, verb[:, None]).flatten()
        tail = [row[v + 1 : n].numpy() for row, v, n in zip(s.inputs, verb, s.lengths)]
        return np.stack([np.bincount(t, minlength=probe.vocab_size) for t in tail]), label.numpy()

    counts, label = tails(10)  # naive Bayes on the tail words: fitted on one sample, scored on another
    word_counts = [counts[label == c].sum(0) + 1 for c in (0, 1)]  # (V,) per class, add-one smoothed
    log_p = [np.log(w / w.sum()) for w in word_counts]
    counts, label = tails(11)
    guess = (counts @ (log_p[1] - log_p[0]) > 0).astype(int)
    assert abs((guess == label).mean() - 0.5) < 0.04


def test_agreement_nouns_other_than_the_subject_agree_with_it_half_the_time():
    probe = build_probe("agreement")
    s = probe.sample(2000, probe.default_distances(), seed=12)
    same = other = 0
    for row, length in zip(s.inputs, s.lengths.tolist()):
        words = words_of(probe, row, length)
        number, verb, reach, _ = parse_agreement(words)
        numbers = [NUMBER[w] for i, w in enumerate(words) if w in NUMBER and i != verb - reach]
        same, other = same + numbers.count(number), other + len(numbers)
    assert abs(same / other - 0.5) < 0.03


# ---------------------------------------------------------------- copy memory


def test_copy_follows_the_papers_layout_and_targets_repeat_the_first_ten_digits():
    probe = build_probe("copy")
    s = probe.sample(300, [8, 30], seed=5)
    for row, length, target, T, answer in examples(s, "answer_mask"):
        values = (row[:length] - 1).tolist()  # back to the paper's values
        assert length == T + 20 and all(1 <= v <= 8 for v in values[:10])
        assert values[10 : T + 9] == [0] * (T - 1) and values[T + 9 :] == [9] * 11
        assert target[: T + 10].tolist() == [0] * (T + 10) and target[T + 10 : length].tolist() == values[:10]
        assert answer.nonzero().flatten().tolist() == list(range(T + 10, T + 20))


@pytest.mark.parametrize("T", [8, 50])
def test_copy_chance_loss_is_that_of_blanks_right_and_uniform_digits(T):
    probe = build_probe("copy")
    s = probe.sample(50, [T], seed=6)
    logits = torch.full((*s.targets.shape, probe.n_classes), -1e9)  # (N, L, C)
    logits[..., 0][~s.extra["answer_mask"]] = 0.0
    logits[..., 1:][s.extra["answer_mask"]] = 0.0
    loss = F.cross_entropy(logits.transpose(1, 2), s.targets)
    assert loss.item() == pytest.approx(probe.chance(T)["loss"], rel=1e-6)
    assert probe.chance(T)["loss"] == pytest.approx(10 * math.log(8) / (T + 20))


def test_copy_chance_accuracy_is_that_of_a_constant_digit():
    probe = build_probe("copy")
    s = probe.sample(2000, [8], seed=7)
    digits = s.targets[s.extra["answer_mask"]]
    assert (digits == 3).float().mean().item() == pytest.approx(probe.chance(8)["accuracy"], abs=0.01)


# ---------------------------------------------------------------- adding problem


def test_adding_target_is_the_sum_of_the_two_marked_values_one_per_half():
    s = build_probe("adding").sample(400, [2, 9, 64], seed=8)
    for x, T, target, _ in examples(s):
        marked = x[:T, 1].nonzero().flatten().tolist()
        assert len(marked) == 2 and marked[0] < T // 2 <= marked[1]
        assert ((x[:T, 0] >= 0) & (x[:T, 0] < 1)).all()
        assert (~target.isnan()).nonzero().flatten().tolist() == [T - 1]
        assert target[T - 1] == x[marked[0], 0] + x[marked[1], 0]


def test_adding_chance_is_the_mse_of_always_predicting_one():
    probe = build_probe("adding")
    s = probe.sample(20000, [16], seed=9)
    mse = ((s.targets[:, -1] - 1) ** 2).mean().item()
    assert mse == pytest.approx(probe.chance(16)["mse"], abs=0.01)


# ---------------------------------------------------------------- listops

REFERENCE = {"[MAX": max, "[MIN": min, "[MED": lambda a: int(np.median(a)), "[SM": lambda a: sum(a) % 10}


def evaluate_listops(words, max_args):
    """Value and nesting depth of a token string, by a stack (the generator recurses on a tree)."""
    stack, depth, deepest = [[]], 0, 0
    for w in words:
        if w in REFERENCE:
            stack.append([w])
            depth += 1
            deepest = max(deepest, depth)
        elif w == "]":
            op, *args = stack.pop()
            assert 2 <= len(args) <= max_args
            stack[-1].append(REFERENCE[op](args))
            depth -= 1
        else:
            stack[-1].append(int(w))
    (value,) = stack[0]
    return value, deepest


def test_listops_labels_and_depths_match_a_stack_evaluator():
    probe = build_probe("listops", max_args=6, max_length=120)
    s = probe.sample(500, probe.default_distances(), seed=10)
    assert (s.extra["length"] == s.lengths).all() and int(s.lengths.max()) <= 120
    for row, length, label, depth in examples(s):
        assert evaluate_listops(words_of(probe, row, length), max_args=6) == (int(label), depth)


@pytest.mark.parametrize("depth", [1, 2])
def test_listops_majority_chance_matches_a_fresh_sample(depth):
    probe = build_probe("listops")
    labels = probe.sample(5000, [depth], seed=123).targets
    majority = torch.bincount(labels, minlength=10).max().item() / len(labels)
    assert probe.chance(depth) == {"accuracy": pytest.approx(majority, abs=0.025), "uniform": 0.1}


# ---------------------------------------------------------------- recall


def test_recall_target_is_the_queried_keys_value_and_keys_are_distinct():
    probe = build_probe("recall", n_keys=40, n_values=7, max_pairs=30)
    s = probe.sample(300, probe.default_distances(), seed=11)
    for row, length, target, distance in examples(s):
        words = words_of(probe, row, length)
        keys, values, query = words[0:-2:2], words[1:-2:2], words[-1]
        assert words[-2] == "?" and len(set(keys)) == len(keys)
        assert all(k.startswith("k") for k in keys) and all(v.startswith("v") for v in values)
        pair = keys.index(query)
        assert (target != -100).nonzero().flatten().tolist() == [length - 1]
        assert f"v{int(target[length - 1])}" == values[pair]
        assert (length - 1) - (2 * pair + 1) == distance


def test_recall_position_of_the_queried_pair_is_not_fixed_by_the_distance():
    s = build_probe("recall").sample(200, [8], seed=12)
    assert len(set(s.lengths.tolist())) > 10


def test_recall_chance_is_one_over_the_number_of_values():
    probe = build_probe("recall", n_values=7)
    s = probe.sample(3000, [4], seed=13)
    answers = s.targets[s.targets != -100]
    assert probe.chance(4) == {"accuracy": 1 / 7}
    assert (answers == 0).float().mean().item() == pytest.approx(1 / 7, abs=0.02)


# ---------------------------------------------------------------- multi-query recall, selective copying


def test_mqar_queries_every_key_once_after_its_pairs_and_targets_its_value():
    probe = build_probe("mqar", n_keys=16, n_values=8)
    s = probe.sample(200, [2, 5, 9], seed=3)
    for row, length, target, pairs in examples(s):
        assert length == 3 * pairs
        ids = row[:length].tolist()
        store = {ids[2 * i]: ids[2 * i + 1] - 1 - probe.n_keys for i in range(pairs)}  # key -> value class
        assert len(store) == pairs and all(1 <= k <= probe.n_keys for k in store)  # distinct keys
        queries = ids[2 * pairs :]
        assert sorted(queries) == sorted(store)  # every key once
        assert target[: 2 * pairs].eq(-100).all() and target[length:].eq(-100).all()
        assert target[2 * pairs : length].tolist() == [store[q] for q in queries]


def test_mqar_chance_is_one_over_the_values_and_a_lookup_table_solves_it():
    probe = build_probe("mqar", n_keys=16, n_values=8)
    assert probe.chance(4) == {"accuracy": 1 / 8}
    s = probe.sample(400, [4], seed=0)
    scored = s.targets != -100
    assert float((s.targets[scored] == 0).float().mean()) == pytest.approx(1 / 8, abs=0.03)  # a constant guess


def test_selective_copy_scatters_the_symbols_in_order_and_asks_for_them_after_the_marker():
    probe = build_probe("selective_copy", n_content=3, n_symbols=5)
    s = probe.sample(200, [6, 20], seed=1)
    for row, length, target, span, answer in examples(s, "answer_mask"):
        ids = row[:length].tolist()
        assert length == span + 1 + 3 and ids[span] == probe.marker
        content = [i for i in ids[:span] if i != probe.noise]
        assert len(content) == 3 and all(1 <= i <= 5 for i in content)
        assert target[span + 1 : length].tolist() == [i - 1 for i in content]  # in order
        assert answer.nonzero().squeeze(1).tolist() == list(range(span + 1, length))
        assert all(i == probe.noise for i in ids[span + 1 :])  # the answer positions carry no hint
    places = [tuple(i for i, x in enumerate(r[:d].tolist()) if x != probe.noise) for r, d in zip(s.inputs, s.distance)]
    assert len(set(places)) > 50  # the content's positions vary: no fixed filter finds it


# ---------------------------------------------------------------- state tracking


@pytest.mark.parametrize("modulus", [2, 3])
def test_parity_targets_are_the_running_sum_mod_m_scored_at_the_last_position(modulus):
    probe = build_probe("parity", modulus=modulus)
    assert probe.chance(8) == {"accuracy": 1 / modulus} and probe.vocab_size == modulus + 1
    s = probe.sample(300, [5, 12], seed=4)
    for row, length, target, T, answer in examples(s, "answer_mask"):
        symbols = [i - 1 for i in row[:length].tolist()]
        assert length == T and all(0 <= x < modulus for x in symbols)
        assert target[:length].tolist() == [sum(symbols[: t + 1]) % modulus for t in range(length)]
        assert answer.nonzero().squeeze(1).tolist() == [length - 1]  # scored where the whole string counts
    final = s.targets[s.extra["answer_mask"]]
    assert float((final == 0).float().mean()) == pytest.approx(1 / modulus, abs=0.07)  # no constant beats chance
