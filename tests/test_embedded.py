"""The embedded tasks (bench/data/embedded.py): the data contract, determinism, disjoint splits,
and, for each task, evidence computed here that context decides the labels.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math
import time
from collections import Counter

import pytest

from bench.data import SPLITS, TASK_TYPES, embedded
from bench.data.embedded import Event, relation, sentiment_score

TASKS = list(TASK_TYPES)
ENTITY_TYPES = {"PER", "LOC", "ORG"}


@pytest.fixture(scope="module")
def made():
    """Each task once, at a size that gives stable statistics in a second or two."""
    return {t: embedded.generate(t, n_train=3000, n_validation=300, n_test=400, seed=0) for t in TASKS}


def inputs(split, task_type):
    return [tuple(str(row[c]) for c in TASK_TYPES[task_type][:-1]) for row in split]


# --- the contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("task_type", TASKS)
def test_every_split_has_the_columns_and_size_asked_for(made, task_type):
    data = made[task_type]
    assert list(data) == list(SPLITS)
    assert [len(data[s]) for s in SPLITS] == [3000, 300, 400]
    for split in SPLITS:
        assert data[split].column_names == list(TASK_TYPES[task_type])
        for row in data[split]:
            for column, value in row.items():
                words = value if isinstance(value, list) else value.split(" ")
                assert words and all(isinstance(w, str) and w and " " not in w for w in words), (column, value)


def test_tags_are_one_per_token_and_valid_bio(made):
    for split in SPLITS:
        for row in made["labelling"][split]:
            assert len(row["tags"]) == len(row["tokens"])
            previous = "O"
            for tag in row["tags"]:
                assert tag == "O" or (tag[:2] in ("B-", "I-") and tag[2:] in ENTITY_TYPES), tag
                if tag.startswith("I-"):
                    assert previous in ("B-" + tag[2:], tag), (previous, tag)
                previous = tag


@pytest.mark.parametrize("task_type", TASKS)
def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(task_type):
    first, again, other = (embedded.generate(task_type, 40, 10, 10, seed=s) for s in (3, 3, 4))
    assert all(first[s].to_dict() == again[s].to_dict() for s in SPLITS)
    assert first["train"].to_dict() != other["train"].to_dict()


@pytest.mark.parametrize("task_type", TASKS)
def test_no_input_is_in_two_splits(made, task_type):
    keys = {s: inputs(made[task_type][s], task_type) for s in SPLITS}
    assert all(len(set(k)) == len(k) for k in keys.values())
    assert not set(keys["train"]) & set(keys["validation"])
    assert not set(keys["train"]) & set(keys["test"])
    assert not set(keys["validation"]) & set(keys["test"])


def test_the_test_split_does_not_change_with_the_training_size():
    small, large = (embedded.generate("pair", n, 20, 30, seed=0) for n in (10, 200))
    assert small["test"].to_dict() == large["test"].to_dict()


@pytest.mark.parametrize("task_type", ["classification", "pair"])
def test_labels_are_balanced_to_within_one(made, task_type):
    counts = Counter(made[task_type]["train"]["label"])
    assert len(counts) == 3
    assert all(abs(c - 1000) <= 1 for c in counts.values()), counts


def test_every_entity_type_is_common(made):
    spans = Counter(t[2:] for tags in made["labelling"]["train"]["tags"] for t in tags if t.startswith("B-"))
    assert set(spans) == ENTITY_TYPES
    assert all(c / sum(spans.values()) > 0.25 for c in spans.values()), spans


def test_ten_thousand_examples_take_seconds():
    for task_type in TASKS:
        start = time.perf_counter()
        embedded.generate(task_type, 9000, 500, 500, seed=1)
        assert time.perf_counter() - start < 10, task_type


# --- bad settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda: embedded.generate("tagging", 10, 10, 10, seed=0), "tagging"),
        (lambda: embedded.generate("pair", 10, 10, 10, seed=0, n_words=5), "n_words"),
        (lambda: embedded.generate("pair", 10, 10, 10, seed=0, n_nouns="many"), "n_nouns"),
        (lambda: embedded.generate("pair", 10, 10, 10, seed=0, n_nouns=1), "n_nouns"),
        (lambda: embedded.generate("generation", 10, 10, 10, seed=0, subordinate_rate=2.0), "subordinate_rate"),
        (lambda: embedded.generate("labelling", 10, 10, 10, seed=0, min_length=9, max_length=8), "min_length"),
        (lambda: embedded.generate("classification", 0, 10, 10, seed=0), "n_train"),
        (
            lambda: embedded.generate(
                "labelling", 1000, 10, 10, seed=0, n_words=2, max_gap=0, min_length=1, max_length=2
            ),
            "distinct",
        ),
    ],
)
def test_a_bad_setting_raises_a_value_error_that_names_it(call, named):
    with pytest.raises(ValueError, match=named):
        call()


def test_baselines_score_the_majority_and_refuse_generation(made):
    assert embedded.majority_baseline(made["classification"]) == pytest.approx(1 / 3, abs=0.01)
    assert 0.6 < embedded.majority_baseline(made["labelling"]) < 0.8
    with pytest.raises(ValueError):
        embedded.majority_baseline(made["generation"])


# --- labelling: the tag of a word is decided by its neighbours ----------------------------------


def context_tags(tokens, names):
    """The reference rule: a name word takes its type from the nearest closed-class word on its left
    (a trigger; a determiner or pronoun makes it no name), from the suffix after it when that word is
    "with", or from the name before "and"."""
    trigger = {w: t for t, words in embedded.TRIGGERS.items() for w in words}
    suffix = {w: t for t, words in embedded.SUFFIXES.items() for w in words}
    closed = {*trigger, *embedded.DETERMINERS, *embedded.PRONOUNS, "with", "and"}
    tags = []
    for i, word in enumerate(tokens):
        anchor = next((j for j in range(i - 1, -1, -1) if tokens[j] in closed), None)
        if word not in names or anchor is None or tokens[anchor] in (*embedded.DETERMINERS, *embedded.PRONOUNS):
            tags.append("O")
            continue
        if tokens[anchor] == "and":
            kind = tags[anchor - 1][2:]
        elif tokens[anchor] == "with":
            kind = next(suffix[w] for w in tokens[i:] if w in suffix)
        else:
            kind = trigger[tokens[anchor]]
        tags.append(("I-" if tokens[i - 1] in names else "B-") + kind)
    return tags


def test_a_word_alone_tags_poorly_but_its_context_tags_perfectly(made):
    data = made["labelling"]
    unigram = embedded.unigram_baseline(data)
    assert unigram < 0.8
    names = {w for row in data["train"] for w, t in zip(row["tokens"], row["tags"]) if t != "O"}
    tags = [(p, t) for row in data["test"] for p, t in zip(context_tags(row["tokens"], names), row["tags"])]
    assert sum(p == t for p, t in tags) / len(tags) > 0.99 > unigram + 0.2


# --- classification: negation scope and "but" ---------------------------------------------------

POLARITY = {"good": 1, "bad": -1}


def score(text):
    return sentiment_score(text.split(), POLARITY)


def test_negation_flips_only_what_follows_it_within_its_clause():
    assert score("the film is not good") == -1
    assert score("the good film is not good") == 0
    assert score("the film is not good and bad") == 0
    assert score("the film is good and not bad") == 2
    assert score("the film is not good , the plot is good") == 0


def test_intensifiers_double_and_only_the_clause_after_but_counts():
    assert score("the film is very good") == 2
    assert score("the film is very good but the plot is bad") == -1
    assert score("the film is bad but the plot is good") == 1


def naive_bayes_accuracy(data, featurize):
    """Test accuracy of a multinomial naive Bayes on bags of features: what ignoring word order gets."""
    counts, priors = {}, Counter(data["train"]["label"])
    for row in data["train"]:
        counts.setdefault(row["label"], Counter()).update(featurize(row))
    vocab = set().union(*counts.values())
    totals = {label: sum(c.values()) + len(vocab) for label, c in counts.items()}

    def predict(row):
        return max(
            priors,
            key=lambda label: (
                math.log(priors[label]) + sum(math.log((counts[label][f] + 1) / totals[label]) for f in featurize(row))
            ),
        )

    return sum(predict(row) == row["label"] for row in data["test"]) / len(data["test"])


def test_a_bag_of_words_classifies_sentiment_poorly(made):
    data = made["classification"]
    accuracy = naive_bayes_accuracy(data, lambda row: row["text"].split())
    assert embedded.majority_baseline(data) + 0.03 < accuracy < 0.6


# --- pair: word order carries the roles ----------------------------------------------------------

CAT_CHASES_DOG = Event("cat", None, "chase", "dog", None, None, negated=False)
OLD_CAT_CHASES_DOG = Event("cat", "old", "chase", "dog", None, None, negated=False)


def swapped(e):
    return Event(e.patient, e.patient_adj, e.verb, e.agent, e.agent_adj, e.place, e.negated)


def negated(e):
    return Event(e.agent, e.agent_adj, e.verb, e.patient, e.patient_adj, e.place, not e.negated)


def test_dropping_a_modifier_entails_except_under_negation():
    assert relation(OLD_CAT_CHASES_DOG, CAT_CHASES_DOG) == "entailment"
    assert relation(CAT_CHASES_DOG, OLD_CAT_CHASES_DOG) == "neutral"
    assert relation(negated(OLD_CAT_CHASES_DOG), negated(CAT_CHASES_DOG)) == "neutral"
    assert relation(negated(CAT_CHASES_DOG), negated(OLD_CAT_CHASES_DOG)) == "entailment"


def test_swapped_roles_are_neutral_and_a_general_denial_contradicts():
    assert relation(CAT_CHASES_DOG, swapped(CAT_CHASES_DOG)) == "neutral"
    assert relation(CAT_CHASES_DOG, negated(swapped(CAT_CHASES_DOG))) == "neutral"
    assert relation(OLD_CAT_CHASES_DOG, negated(CAT_CHASES_DOG)) == "contradiction"
    assert relation(CAT_CHASES_DOG, negated(OLD_CAT_CHASES_DOG)) == "neutral"
    assert relation(negated(CAT_CHASES_DOG), OLD_CAT_CHASES_DOG) == "contradiction"


def test_the_same_words_in_another_order_change_the_pair_label(made):
    same_words = Counter(
        row["label"] for row in made["pair"]["train"] if sorted(row["text_a"].split()) == sorted(row["text_b"].split())
    )
    assert same_words["entailment"] >= 20 and same_words["neutral"] >= 20, same_words


def test_bags_of_words_of_both_sentences_classify_pairs_poorly(made):
    data = made["pair"]
    accuracy = naive_bayes_accuracy(
        data, lambda row: [("a", w) for w in row["text_a"].split()] + [("b", w) for w in row["text_b"].split()]
    )
    assert embedded.majority_baseline(data) + 0.03 < accuracy < 0.6


# --- generation: reordering and agreement, no shared words --------------------------------------


def test_copying_the_source_shares_no_word_with_the_target(made):
    rows = made["generation"]["test"]
    source_words = {w for s in rows["source"] for w in s.split()}
    target = [w for t in rows["target"] for w in t.split()]
    assert sum(w in source_words for w in target) / len(target) < 0.01
    assert all(s != t for s, t in zip(rows["source"], rows["target"]))


def test_the_target_is_not_the_source_translated_word_by_word_in_order(made):
    """A dictionary learnt from co-occurrence (Dice) aligns words; most targets need reordering
    or a word whose form depends on another, so a monotone word-by-word translation is rarely right."""
    train, test = made["generation"]["train"], made["generation"]["test"]
    src_count, tgt_count, both = Counter(), Counter(), Counter()
    for s, t in zip(train["source"][:1500], train["target"][:1500]):
        s_words, t_words = set(s.split()), set(t.split())
        src_count.update(s_words)
        tgt_count.update(t_words)
        both.update((a, b) for a in s_words for b in t_words)
    best = {}
    for (a, b), n in both.items():
        dice = 2 * n / (src_count[a] + tgt_count[b])
        if dice > best.get(a, (0, None))[0]:
            best[a] = (dice, b)
    reordered = exact = 0
    for s, t in zip(test["source"], test["target"]):
        words = t.split()
        translated = [best[w][1] for w in s.split() if w in best]
        positions = [words.index(w) for w in translated if words.count(w) == 1]
        reordered += positions != sorted(positions)
        exact += translated == words
    assert reordered / len(test) > 0.5
    assert exact / len(test) < 0.1
