"""Task metrics against values worked out by hand."""

import pytest

from bench import metrics


def test_accuracy_and_macro_f1_by_hand():
    gold, pred = ["a", "a", "b", "c"], ["a", "b", "b", "b"]
    assert metrics.accuracy(gold, pred) == 0.5
    # F1: a = 2*1/(2+0+1) = 2/3; b = 2*1/(2+2+0) = 1/2; c = 0
    assert metrics.macro_f1(gold, pred) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)


def test_span_f1_counts_exact_spans_only():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"]]  # one of two spans right, one wrong: P = R = 1/2
    assert metrics.span_f1(gold, pred) == pytest.approx(0.5)


def test_bio_detection():
    assert metrics.is_bio(["O", "B-PER"]) and not metrics.is_bio(["NOUN", "VERB"])


def test_bleu_and_chrf_of_a_perfect_and_an_empty_output():
    refs = ["the cat sat on the mat .", "a dog ran in the park ."]
    assert metrics.bleu(refs, refs) == pytest.approx(100.0)
    assert metrics.bleu(["", ""], refs) == 0.0
    assert metrics.chrf(refs, refs) == pytest.approx(100.0)
