"""Task metrics, computed on plain Python lists so they can be checked against known values."""

from __future__ import annotations

from collections import Counter

# the range each metric can take: the report clips intervals to it (a t interval over few seeds can overshoot),
# and the convergence rule reads a metric's ceiling and tolerance from it
RANGES = {
    "accuracy": (0, 1),
    "macro_f1": (0, 1),
    "span_f1": (0, 1),
    "f1": (0, 1),
    "bleu": (0, 100),
    "chrf": (0, 100),
    "mse": (0, None),
    "loss": (0, None),
    "cross_entropy": (0, None),
    "effective_distance": (0, None),
}
LOWER_IS_BETTER = ("mse", "loss", "cross_entropy")  # every other metric is better higher


def accuracy(gold: list, pred: list) -> float:
    if not gold:
        return float("nan")
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def macro_f1(gold: list, pred: list) -> float:
    """Unweighted mean over the gold classes of the per-class F1."""
    classes = sorted(set(gold))
    if not classes:
        return float("nan")
    scores = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def is_bio(tags) -> bool:
    """Whether a tag set is BIO-style spans (some tag starts with B- or I-)."""
    return any(t.startswith(("B-", "I-")) for t in tags)


def span_f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    """Exact-match span F1 of BIO sequences (seqeval, CoNLL-2003 convention)."""
    from seqeval.metrics import f1_score

    return float(f1_score(gold, pred))


def majority(labels: list):
    return Counter(labels).most_common(1)[0][0]


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Cased corpus BLEU of detokenised text (sacrebleu's default 13a tokenisation)."""
    import sacrebleu

    return sacrebleu.corpus_bleu(hypotheses, [references]).score


def chrf(hypotheses: list[str], references: list[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_chrf(hypotheses, [references]).score
