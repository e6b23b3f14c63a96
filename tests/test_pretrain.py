"""Two-stage training: the objectives' masking and shifts, checkpoints reused by fine-tuning, the sense probe."""

from collections import Counter

import pandas as pd
import pytest
import torch

import models
from bench import objectives, pretrain, tasks
from bench.data import wsd
from bench.records import load_records
from bench.report import claims, frames
from bench.runner import run_job
from bench.suite import Context, Unit
from models.heads import TokenEmbedding

TINY = [
    "suite=pretrain",
    "n_seeds=1",
    "param_budget=30000",
    "train.steps=4",
    "train.eval_every=2",
    "train.batch_size=8",
    "pretrain.tokens=[400,800]",
    "pretrain.corpus_per_task=60",
    "pretrain.batch_size=8",
    "pretrain.log_every=5",
    "pretrain.finetune_train_limit=40",
]
SMALL_TASKS = [f"tasks.{t}.{k}={v}" for t in ("tagging", "wsd") for k, v in (("n_validation", 16), ("n_test", 24))]


def test_masking_chooses_fifteen_percent_and_splits_80_10_10():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (400, 64), generator=g)
    lengths = torch.randint(1, 65, (400,), generator=g)
    mask = torch.arange(64)[None] < lengths[:, None]
    inputs, targets = objectives.mask_tokens(ids, mask, 1000, mask_id=6, n_special=7, prob=0.15, generator=g)
    chosen = targets != -100
    assert not (chosen & ~mask).any(), "padding is never a target"
    assert chosen.any(1).all(), "every sentence predicts at least one token"
    assert torch.equal(targets[chosen], ids[chosen]), "targets are the original tokens"
    share = chosen.sum() / mask.sum()
    assert 0.14 < share < 0.165, share
    masked = (inputs[chosen] == 6).float().mean()
    kept = (inputs[chosen] == ids[chosen]).float().mean()
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.12, (masked, kept)
    swapped = chosen & (inputs != 6) & (inputs != ids)
    assert 0.07 < swapped.sum() / chosen.sum() < 0.12
    assert (inputs[swapped] >= 7).all(), "random replacements are words, never specials"
    assert torch.equal(inputs[~chosen], ids[~chosen]), "unchosen tokens are untouched"


def test_language_model_targets_are_the_next_and_previous_tokens():
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    mask = ids != 0
    assert objectives.shift_targets(ids, mask, 1).tolist() == [[6, 7, 8, -100], [10, -100, -100, -100]]
    assert objectives.shift_targets(ids, mask, -1).tolist() == [[-100, 5, 6, 7], [-100, 9, -100, -100]]


@pytest.mark.parametrize(
    "name,objective",
    [(n, "clm") for n in models.available()]
    + [(n, "elmo") for n in models.available() if models.capabilities(n).separate_directions],
)
def test_language_model_never_sees_the_token_it_predicts(name, objective):
    """The loss at each position is unchanged when the token it predicts is changed (in the input)."""
    torch.manual_seed(0)
    stacking = {"stacking": "separate"} if objective == "elmo" else {}
    encoder = models.build_encoder(name, d_model=16, causal=objective == "clm", **stacking, dropout=0.0)
    model = objectives.LanguageModel(encoder, TokenEmbedding(50, 16), objective).eval()
    ids = torch.randint(3, 50, (1, 9))
    mask = torch.ones_like(ids, dtype=torch.bool)
    emb = model.inputs(ids).detach().requires_grad_(True)
    h = model.encoder(emb, mask)
    if objective == "clm":
        parts = [(h, 1)]
    else:
        parts = [(h[..., :8], 1), (h[..., 8:], -1)]
    for part, direction in parts:
        for t in range(9):
            target = t + direction
            if not 0 <= target < 9:
                continue
            (grad,) = torch.autograd.grad(part[0, t].sum(), emb, retain_graph=True)
            unseen = grad[0, target:] if direction == 1 else grad[0, : target + 1]
            assert unseen.abs().max() == 0, f"position {t} sees the token it predicts ({target}) or beyond"


def test_separate_stacking_keeps_padding_invariance():
    torch.manual_seed(0)
    encoder = models.build_encoder("lstm", d_model=16, stacking="separate").eval()
    x = torch.randn(1, 5, 16)
    short = encoder(x, torch.ones(1, 5, dtype=torch.bool))
    padded = encoder(torch.cat([x, torch.randn(1, 3, 16)], 1), torch.arange(8)[None] < 5)
    assert torch.allclose(short, padded[:, :5], atol=1e-5) and padded[:, 5:].abs().max() == 0


def test_fine_tuning_starts_from_the_stored_checkpoint(compose, tmp_path, monkeypatch):
    cfg = compose(*TINY, "model=cnn", "task=[tagging,wsd]", *SMALL_TASKS, f"data.cache={tmp_path / 'cache'}")
    ctx = Context(cfg=cfg, encoder="cnn", device=torch.device("cpu"), out_dir=tmp_path, threads=1)
    result = pretrain.pretrain(ctx, "mlm", seed=0)
    assert list(result["checkpoints"]) == [400, 800]
    assert all(result["checkpoints"][n]["tokens_seen"] >= n for n in (400, 800))
    stored = torch.load(result["checkpoints"][800]["path"], weights_only=True)
    _data, vocab, labels = pretrain.prepare(ctx, "tagging")
    _model, encoder, _inputs = pretrain.build_model(ctx, cfg.tasks.tagging, vocab, labels, "mlm")
    fresh = {k: v.clone() for k, v in encoder.state_dict().items()}
    assert any(not torch.equal(fresh[k], stored["encoder"][k]) for k in fresh), "a fresh encoder differs"
    seen = {}
    real_train = tasks.train

    def spy(model, data, settings, seed, tag=""):  # the weights the training loop receives
        seen.update({k: v.clone() for k, v in model.encoder.state_dict().items()})
        seen["embedding"] = model.inputs.table.weight.detach().clone()
        return real_train(model, data, settings, seed, tag)

    monkeypatch.setattr(tasks, "train", spy)
    _rows, info = pretrain.run(ctx, Unit("tagging", seed=0, params={"objective": "mlm", "tokens": 800}))
    assert info["checkpoint"]["path"] == result["checkpoints"][800]["path"]
    assert all(torch.equal(seen[k], stored["encoder"][k]) for k in stored["encoder"])
    assert torch.equal(seen["embedding"], stored["inputs"]["table.weight"])
    # a rerun reuses the checkpoint rather than pre-training again
    mtime = pretrain.checkpoint_path(ctx, "mlm", 0, 800).stat().st_mtime_ns
    pretrain.load_checkpoint(ctx, "mlm", 0, 800)
    assert pretrain.checkpoint_path(ctx, "mlm", 0, 800).stat().st_mtime_ns == mtime


def test_pretraining_without_clipping_still_learns(compose, tmp_path):
    """train.clip=0 means no clipping: the weights move (with weight decay off, zeroed gradients would leave
    every weight at its initial value)."""
    cfg = compose(
        *TINY, "model=cnn", "task=[tagging]", "train.clip=0", "train.weight_decay=0", f"data.cache={tmp_path / 'cache'}"
    )
    ctx = Context(cfg=cfg, encoder="cnn", device=torch.device("cpu"), out_dir=tmp_path, threads=1)
    pretrain.pretrain(ctx, "mlm", seed=0)
    torch.manual_seed(0)
    initial = models.build_encoder(**pretrain.architecture(cfg, "mlm")).state_dict()
    trained = torch.load(pretrain.checkpoint_path(ctx, "mlm", 0, 400), weights_only=True)["encoder"]
    moved = [name for name, w in initial.items() if not torch.equal(w, trained[name])]
    assert len(moved) > len(initial) // 2, f"only {moved} moved"


def test_a_checkpoint_is_keyed_by_its_learning_rate_schedule(compose, tmp_path):
    """The schedule runs to the largest count, so 400 tokens of a run to 800 are not 400 tokens of a run to 400."""

    def path(tokens):
        cfg = compose(
            *TINY,
            "model=cnn",
            "task=[tagging]",
            *SMALL_TASKS[:2],
            f"pretrain.tokens={tokens}",
            f"data.cache={tmp_path / 'cache'}",
        )
        ctx = Context(cfg=cfg, encoder="cnn", device=torch.device("cpu"), out_dir=tmp_path, threads=1)
        return pretrain.checkpoint_path(ctx, "mlm", 0, 400)

    assert path("[400,800]") == path("[800,400]")
    assert path("[400,800]") != path("[400]")


def test_every_family_sees_the_same_tokens(compose, tmp_path):
    seen = {}
    for name in ("lstm", "transformer"):
        cfg = compose(*TINY, f"model={name}", "task=[tagging]", *SMALL_TASKS[:2], f"data.cache={tmp_path / 'cache'}")
        ctx = Context(cfg=cfg, encoder=name, device=torch.device("cpu"), out_dir=tmp_path, threads=1)
        result = pretrain.pretrain(ctx, "mlm", seed=0)
        seen[name] = (
            result["tokens_seen"],
            result["steps"],
            [c["tokens_seen"] for c in result["checkpoints"].values()],
        )
        assert result["flops"] > 0
    assert seen["lstm"] == seen["transformer"]


def test_pretrain_suite_end_to_end_and_its_claims(compose, tmp_path):
    for name in ("lstm", "transformer"):
        cfg = compose(*TINY, f"model={name}", "task=[tagging,wsd]", *SMALL_TASKS, f"data.cache={tmp_path / 'cache'}")
        run_job(cfg, tmp_path / "run")
    records = load_records(tmp_path / "run")
    assert (records["status"] == "ok").all(), records[records["status"] != "ok"][["task", "reason"]].to_string()
    pre = frames.pretrain(records)
    # per family: tasks x (scratch, 400, 800)
    assert len(pre) == 2 * 2 * 3 and set(pre["tokens"]) == {0, 400, 800}
    assert pre.filter(like="distance=").notna().any().any(), "the sense probe is scored per cue distance"
    assert pre.filter(like="distractors=").notna().any().any(), "and per number of distractor cues"
    verdicts = claims.all_claims(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), claims.unsized(pre))
    rows = verdicts.set_index("claim")
    for claim in (
        "Two-stage training helps the Transformer most",
        "With pre-training, the small-data gap between the Transformer and the RNN closes",
    ):
        assert rows.loc[claim, "verdict"] in (claims.HOLDS, claims.FAILS, claims.UNSURE)  # one seed: never missing
        assert "lstm" in rows.loc[claim, "evidence"]
    curves = frames.pretrain_curves(records)
    assert set(curves["encoder"]) == {"lstm", "transformer"} and curves["loss"].gt(0).all()
    assert curves["heldout_loss"].gt(0).all()  # every point of the curve also scored on held-out sentences


def test_sense_labels_follow_the_cue_in_the_words_own_clause():
    data = wsd.generate(n_train=400, n_validation=50, n_test=50, seed=3, distances=[1, 3, 9], distractors=[0, 2])
    senses, cues, _ = wsd.lexicon(12, 4, 60)
    for row in data["train"]:
        label, distance = wsd.label_of(row["text"], senses, cues)
        assert label == row["label"] and distance == row["distance"]
        other = [cues[w] for w in row["text"].split() if w in cues and cues[w] != label]
        assert len(other) == row["distractors"] and all(o.split(":")[0] == label.split(":")[0] for o in other)
    counts = Counter(data["train"]["distance"])
    assert set(counts) == {1, 3, 9} and min(counts.values()) > 80
    texts = [set(data[s]["text"]) for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    # a bag of words cannot tell: with distractors, both senses' cues are in the text
    two = next(r for r in data["train"] if r["distractors"] == 2)
    word = two["label"].split(":")[0]
    assert {cues[w] for w in two["text"].split() if w in cues} == {f"{word}:a", f"{word}:b"}


def test_sense_probe_rejects_bad_options():
    with pytest.raises(ValueError, match="distances"):
        wsd.generate(10, 5, 5, distances=[0, 2])
    with pytest.raises(ValueError, match="not an option"):
        wsd.generate(10, 5, 5, colour=3)


def test_hub_corpus_goes_through_load_dataset(tmp_path):
    """The hub path, offline: ``datasets.load_dataset`` on a parquet file, as for a hub id."""
    import datasets

    path = tmp_path / "corpus.parquet"
    datasets.Dataset.from_dict({"text": ["A man rides .", "", "Two dogs play in snow ."], "id": [1, 2, 3]}).to_parquet(
        path
    )
    sentences = pretrain.hub_corpus({"path": "parquet", "data_files": str(path), "column": "text"})
    assert sentences == [["A", "man", "rides", "."], ["Two", "dogs", "play", "in", "snow", "."]]
    with pytest.raises(Exception, match="column=body is not a column"):
        pretrain.hub_corpus({"path": "parquet", "data_files": str(path), "column": "body"})


@pytest.mark.parametrize("beam, expected", [("1", 1), ("null", 4)])
def test_fine_tuned_translators_decode_with_the_pretrain_beam(compose, tmp_path, beam, expected):
    cfg = compose(
        *TINY,
        "model=cnn",
        "task=[generation]",
        "tasks.generation.beam_size=4",
        f"pretrain.finetune_beam_size={beam}",
        f"data.cache={tmp_path / 'cache'}",
        *[f"tasks.generation.{k}={v}" for k, v in (("n_train", 60), ("n_validation", 8), ("n_test", 8))],
    )
    ctx = Context(cfg=cfg, encoder="cnn", device=torch.device("cpu"), out_dir=tmp_path, threads=1)
    data, _, _ = pretrain.prepare(ctx, "generation")
    assert data.beam_size == expected


def test_held_out_sentences_never_enter_pre_training():
    corpus = [[i, i + 1] for i in range(100)]
    splits = pretrain.held_out(corpus, wanted=40)
    trained = {tuple(s) for s in splits["train"]}
    kept = [tuple(s) for split in ("validation", "test") for s in splits[split]]
    assert len(kept) == 10 and not trained & set(kept)  # at most a tenth of the corpus
    assert len(trained) + len(kept) == len(corpus)


def test_pre_training_runs_the_one_training_loop_and_learns_on_held_out_text(compose, tmp_path, monkeypatch):
    """Pre-training goes through bench.train.train (its curve, held-out metric and stopping at the last token
    count), and its held-out cross-entropy ends below where it started."""
    from bench import train as loop

    calls = []
    real = loop.train

    def spy(*args, **kwargs):
        calls.append(kwargs.get("after_step"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain, "train", spy)
    cfg = compose(
        *TINY,
        "model=cnn",
        "task=[tagging]",
        "pretrain.tokens=[3000]",
        "pretrain.log_every=10",
        f"data.cache={tmp_path / 'cache'}",
    )
    ctx = Context(cfg=cfg, encoder="cnn", device=torch.device("cpu"), out_dir=tmp_path, threads=1)
    result = pretrain.pretrain(ctx, "mlm", seed=0)
    assert len(calls) == 1 and callable(calls[0])
    curve = result["curve"]
    assert curve[-1]["tokens"] == result["tokens_seen"] >= 3000 > curve[-2]["tokens"]  # stopped at the count
    assert result["heldout"]["validation"] < curve[0]["cross_entropy"], curve
    assert all(p["seconds"] >= 0 for p in curve)
