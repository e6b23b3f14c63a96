"""The report: built from records alone, its tables match them, every claim gets a verdict."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from bench.records import Record, load_records, summary_frame, write_record
from bench.report import build_report, claims, figures, frames
from bench.report.render import human
from bench.report.stats import mean_ci, ratio_of_medians, welch_diff

ENV = {
    "device": "cpu",
    "device_name": "Test CPU",
    "threads": 2,
    "versions": {"torch": "2.13.0", "python": "3.11"},
    "git_commit": "abc",
    "git_dirty": False,
    "command": "python -m bench",
}
SPEED = {"lstm": 1.0, "cnn": 2.0, "transformer": 1.5}  # tokens/s scale per encoder


def speed_record(encoder, T, factor):
    times = list(np.random.default_rng(T).normal(1.0 / factor, 0.01 / factor, 7))
    tok = 32 * T / np.median(times)
    metrics = [
        {"setting": T, "metric": "infer_tokens_per_s", "value": tok},
        {"setting": T, "metric": "train_tokens_per_s", "value": tok / 3},
        {"setting": T, "metric": "infer_mfu", "value": 0.5},
        {"setting": T, "metric": "infer_peak_mb", "value": T / 8},
    ]
    info = {
        "dtype": "fp32",
        "T": T,
        "B": 32,
        "params": 1000,
        "infer_times_s": times,
        "train_times_s": [3 * t for t in times],
    }
    return Record(
        key=f"speed-{encoder}-{T}",
        suite="speed",
        encoder=encoder,
        task="throughput",
        seed=None,
        status="ok",
        metrics=metrics,
        info=info,
        env=ENV,
    )


def distance_record(encoder, seed, accuracy_far):
    distances = [4, 8, 16, 32]
    metrics = []
    for d in distances:
        value = 0.95 if d <= 13 else accuracy_far + 0.01 * seed
        metrics += [
            {"setting": d, "metric": "accuracy", "value": value},
            {"setting": d, "metric": "chance", "value": 0.5},
        ]
    metrics.append({"setting": "all", "metric": "effective_distance", "value": 8})
    metrics += [
        {"setting": f"attractors={k}", "metric": "accuracy", "value": accuracy_far + 0.01 * seed - 0.1 * k}
        for k in range(3)
    ]
    info = {
        "metric": "accuracy",
        "distances": distances,
        "receptive_field": 31 if encoder == "cnn" else None,
        "encoder_params": 1000,
        "convergence": "converged",
    }
    return Record(
        key=f"dist-{encoder}-{seed}",
        suite="distance",
        encoder=encoder,
        task="agreement",
        seed=seed,
        status="ok",
        metrics=metrics,
        info=info,
        env=ENV,
    )


def accuracy_record(encoder, task, seed, value):
    metrics = [
        {"setting": "test", "metric": "accuracy", "value": value},
        {"setting": "test", "metric": "baseline_accuracy", "value": 0.33},
    ]
    info = {
        "type": "classification",
        "selection_metric": "accuracy",
        "train_tokens_per_s": 1000.0 * SPEED[encoder],
        "encoder_params": 1000,
        "params": 2000,
        "convergence": "converged",
    }
    return Record(
        key=f"acc-{encoder}-{task}-{seed}",
        suite="accuracy",
        encoder=encoder,
        task=task,
        seed=seed,
        status="ok",
        metrics=metrics,
        info=info,
        env=ENV,
    )


@pytest.fixture
def results(tmp_path):
    for encoder, factor in SPEED.items():
        for T in (32, 128):
            write_record(tmp_path / f"model={encoder}", speed_record(encoder, T, factor))
        for seed in range(3):
            far = {"lstm": 0.9, "cnn": 0.5, "transformer": 0.6}[encoder]
            write_record(tmp_path / f"model={encoder}", distance_record(encoder, seed, far))
            for task, base in (("sent", 0.7), ("nli", 0.6)):
                value = base + {"lstm": 0.0, "cnn": 0.05, "transformer": 0.1}[encoder] + 0.005 * seed
                write_record(tmp_path / f"model={encoder}", accuracy_record(encoder, task, seed, value))
    write_record(
        tmp_path / "model=cnn",
        Record(
            key="broken",
            suite="accuracy",
            encoder="cnn",
            task="sent",
            seed=9,
            status="failed",
            reason="RuntimeError: it broke",
            env=ENV,
        ),
    )
    return tmp_path


def test_report_files_are_written_and_the_html_is_self_contained(results):
    paths = build_report(results)
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and not re.search(r'src="(?!data:)', page)
    for name in ("speed_throughput", "speed_memory", "distance", "accuracy", "answer_test_cpu"):
        assert (paths["figures"] / f"{name}.png").exists() and (paths["figures"] / f"{name}.svg").exists()


def test_tables_match_the_records_they_came_from(results):
    text = build_report(results)["md"].read_text()
    tok = round(32 * 128 / np.median(speed_record("cnn", 128, 2.0).info["infer_times_s"]))
    assert re.search(rf"\| cnn \| fp32 \| [^\n]*\b{tok:.4g}\b", text.replace(",", "")), "cnn T=128 throughput missing"
    acc = frames.accuracy(__import__("bench.records", fromlist=["x"]).load_records(results))
    mean = acc[(acc.encoder == "transformer") & (acc.task == "sent")]["value"].mean()
    assert f"{mean:.3g} [" in text


def test_every_claim_row_has_a_verdict_and_its_evidence(results):
    table = pd.read_csv(build_report(results)["claims"])
    assert len(table) >= 9
    assert set(table["verdict"]) <= {"holds", "does not hold", "mixed", "inconclusive", "missing data"}
    assert table["evidence"].fillna("").str.len().gt(10).all() and table["rule"].str.len().gt(10).all()


def test_verdicts_follow_the_data(results):
    table = pd.read_csv(build_report(results)["claims"]).set_index("claim")
    row = lambda text: table[table.index.str.contains(text, regex=False)].iloc[0]
    assert row("weaker than the RNN on agreement")["verdict"] == "holds"  # lstm 0.9 vs transformer 0.6 beyond 13
    assert row("CNN falls behind")["verdict"] == "holds"  # cnn 0.5 below both
    assert (
        row("Task accuracy Transformer > CNN > RNN")["verdict"] == "holds"
    )  # 0.1 > 0.05 > 0.0 on both tasks, tight seeds
    evidence = row("Task accuracy Transformer > CNN > RNN")["evidence"]
    assert re.search(
        r"sent: [^;]*; transformer - cnn 0\.05 \[[-0-9.e]+, [-0-9.e]+\], p [-0-9.e]+ \(Holm [-0-9.e]+\), cnn - lstm 0\.05 \[",
        evidence,
    )
    assert row("Speed order Transformer > CNN > RNN, parameter-matched (inference")["verdict"] == "does not hold"
    assert row("Transformer-Base")["verdict"] == "missing data"


def test_a_role_with_two_encoders_is_judged_once_per_encoder(tmp_path):
    """A GRU declares the rnn family: each claim about the RNN is judged with the LSTM and with the GRU, and says
    which stood for the role; an encoder of no role (an ssm) never enters the role claims."""
    for encoder, family, factor, far in (
        ("lstm", "rnn", 1.0, 0.9),
        ("gru", "rnn", 4.0, 0.4),
        ("cnn", "cnn", 2.0, 0.5),
        ("transformer", "attention", 1.5, 0.6),
        ("ssm", "ssm", 0.5, 0.1),
    ):
        records = [speed_record(encoder, T, factor) for T in (32, 128)]
        records += [distance_record(encoder, seed, far) for seed in range(3)]
        for record in records:
            record.family = family  # as the runner writes it: the family the encoder declares
            write_record(tmp_path, record)
    table = claims.all_claims(*(claims.unsized(t) for t in _tables(tmp_path))).set_index("claim")
    slow = table[table.index.str.startswith("The RNN is 3x to tens of times slower (inference")]
    assert sorted(slow.index) == [
        f"The RNN is 3x to tens of times slower (inference, fp32) [RNN: {e}]" for e in ("gru", "lstm")
    ]
    assert slow["conditions"].str.startswith("roles filled by RNN: ").all()
    agreement = table[table.index.str.contains("weaker than the RNN")]
    assert agreement.loc[agreement.index.str.endswith("[RNN: lstm]"), "verdict"].item() == "holds"  # 0.9 vs 0.6
    assert agreement.loc[agreement.index.str.endswith("[RNN: gru]"), "verdict"].item() == "does not hold"  # 0.4 vs 0.6
    behind = table[table.index.str.startswith("A plain CNN falls behind")]
    assert not behind["evidence"].str.contains("ssm").any()  # 0.1: it would have made the cnn look ahead
    # cnn 0.5 above gru 0.4 but below transformer 0.6, both significant: mixed
    assert behind.loc[behind.index.str.endswith("[RNN: gru]"), "verdict"].item() == "mixed"


def _tables(run_dir):
    records = load_records(run_dir)
    tables = [frames.speed(records), frames.distance(records), frames.accuracy(records), frames.pretrain(records)]
    frames.label_sizes(*tables)
    return tables


def test_speed_from_two_devices_is_judged_and_tabled_per_device(tmp_path):
    # the same encoders on a CPU (cnn fastest) and a GPU (transformer fastest, 100x): never merged
    for device, scale in (("Test CPU", 1.0), ("Test GPU", 100.0)):
        for encoder, factor in SPEED.items():
            factor = {"transformer": 3.0}.get(encoder, factor) if device == "Test GPU" else factor
            for T in (32, 128):
                r = speed_record(encoder, T, factor * scale)
                r.env = {**ENV, "device_name": device}
                write_record(tmp_path / device.replace(" ", "_") / f"model={encoder}", r)
    paths = build_report(tmp_path)
    text = paths["md"].read_text()
    assert "## Speed on Test CPU" in text and "## Speed on Test GPU" in text
    for device in ("test_cpu", "test_gpu"):
        assert (paths["figures"] / f"speed_{device}_throughput.png").exists()
    cpu, gpu = (
        text.split("## Speed on Test GPU")[0].split("## Speed on Test CPU")[1],
        text.split("## Speed on Test GPU")[1],
    )
    tok = lambda e, T, f: human(32 * T / np.median(speed_record(e, T, f).info["infer_times_s"]))
    assert tok("cnn", 128, 2.0) in cpu and tok("cnn", 128, 200.0) in gpu and tok("cnn", 128, 200.0) not in cpu
    table = pd.read_csv(paths["claims"]).set_index("claim")
    order = table[table.index.str.startswith("Speed order Transformer > CNN > RNN, parameter-matched (inference")]
    assert sorted(order.index) == [
        f"Speed order Transformer > CNN > RNN, parameter-matched (inference, fp32) on {d}"
        for d in ("Test CPU", "Test GPU")
    ]
    assert "T=128: cnn > transformer > lstm" in order.iloc[0]["evidence"]
    assert "T=128: transformer > cnn > lstm" in order.iloc[1]["evidence"]
    rules = text.split("<summary>The rule behind each verdict</summary>")[1].split("</details>")[0]
    assert rules.count("| Speed order Transformer > CNN > RNN, parameter-matched (inference, fp32) |") == 1  # once


def test_compiled_speed_never_merges_with_eager(tmp_path):
    for compiled, factor in ((False, 1.0), (True, 4.0)):
        r = speed_record("transformer", 128, factor)
        r.key, r.config = f"speed-transformer-128-{compiled}", {"speed": {"compile": compiled}}
        write_record(tmp_path / f"compile={compiled}", r)
    table = frames.speed(load_records(tmp_path)).set_index("dtype")
    assert sorted(table.index) == ["fp32", "fp32+compile"]
    assert table.loc["fp32+compile", "infer_tokens_per_s"] > 3 * table.loc["fp32", "infer_tokens_per_s"]
    summary = summary_frame(load_records(tmp_path))
    assert not summary.duplicated(["encoder", "task", "variant", "setting", "metric"]).any()


def test_failed_runs_are_listed_as_failed(results):
    assert "RuntimeError: it broke" in build_report(results)["md"].read_text()


def test_a_single_encoder_folder_still_reports(tmp_path):
    write_record(tmp_path, speed_record("lstm", 32, 1.0))
    paths = build_report(tmp_path)
    assert "missing data" in paths["md"].read_text()


def test_an_empty_folder_still_reports(tmp_path):
    assert build_report(tmp_path)["html"].exists()


def _legend(fig) -> dict:
    """label -> colour of every legend entry of a figure, in legend order."""
    from matplotlib.colors import to_rgb

    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    handles = getattr(legend, "legend_handles", None) or legend.legendHandles
    out = {}
    for text, handle in zip(legend.get_texts(), handles):
        color = handle.get_color() if hasattr(handle, "get_color") else handle.get_facecolor()
        out[text.get_text()] = to_rgb(color[0] if isinstance(color, np.ndarray) and color.ndim == 2 else color)
    return out


def test_legend_order_and_colours_match_the_data_in_every_figure(results):
    """The seaborn pitfall (../shared/NOTES.md): under pandas 3, string hues can be mis-ordered so that a
    legend names one encoder beside another's line. Each figure's legend lists the encoders in the one
    order, in their palette colours, and the artist of that colour carries that encoder's data."""
    from matplotlib.colors import to_rgb

    records = load_records(results)
    speed, dist, acc = frames.speed(records), frames.distance(records), frames.accuracy(records)
    order = frames.encoder_order(speed["encoder"])
    assert order == ["lstm", "cnn", "transformer"]
    colors = figures.palette(order)
    built = {
        "speed": figures.speed_lines(speed, {"infer_tokens_per_s": "inference"}, "tokens/s", order),
        "distance": figures.distance_curves(dist, order),
        "accuracy": figures.accuracy_points(acc, order),
        "pareto": figures.pareto(acc, order, {"sent": ["lstm"]}),
    }
    for name, fig in built.items():
        legend = _legend(fig)
        assert [label for label in legend if label in order] == order, name
        for encoder in order:
            assert legend[encoder] == pytest.approx(to_rgb(colors[encoder])), (name, encoder)
    # the line drawn in the lstm's colour really carries the lstm's data (slowest), not another encoder's
    line = next(l for l in built["speed"].axes[0].get_lines() if l.get_gid() == "lstm|fp32")
    assert to_rgb(line.get_color()) == pytest.approx(to_rgb(colors["lstm"]))
    assert np.allclose(
        sorted(line.get_ydata()), sorted(speed[speed.encoder == "lstm"]["infer_tokens_per_s"]), rtol=1e-6
    )


def test_the_seaborn_drawn_figure_keeps_legend_and_lines_together_with_string_columns():
    # pre-training loss, drawn by seaborn with a hue: each encoder's loss is its own constant (lstm 1, cnn 2,
    # transformer 3), its encoder column a pandas string array (pandas 3's default)
    from matplotlib.colors import to_rgb

    level = {"transformer": 3.0, "cnn": 2.0, "lstm": 1.0}
    curves = pd.DataFrame(
        [
            {"encoder": e, "objective": "mlm", "seed": s, "tokens": t, "loss": level[e]}
            for e in level
            for s in (0, 1)
            for t in (100, 200, 300)
        ]
    )
    curves["encoder"] = curves["encoder"].astype("string")
    order = frames.encoder_order(level)
    fig = figures.pretrain_loss(curves, order)
    legend = _legend(fig)
    assert [label for label in legend if label in order] == order
    for encoder in order:
        lines = [
            l
            for l in fig.axes[0].get_lines()
            if len(l.get_ydata()) and to_rgb(l.get_color()) == pytest.approx(legend[encoder])
        ]
        assert lines and all(np.allclose(l.get_ydata(), level[encoder]) for l in lines), encoder


def test_each_family_keeps_its_colour_whatever_else_is_shown():
    alone = figures.palette(["lstm", "cnn", "transformer"])
    mixed = figures.palette(["transformer_base", "lstm (0.1M)", "lstm (3.2M)", "cnn", "transformer"])
    assert mixed["cnn"] == alone["cnn"] and mixed["transformer"] == alone["transformer"]
    assert len(set(mixed.values())) == len(mixed), "every name shown gets its own colour"
    # two sizes of the lstm are shades of the lstm's colour: nearer to it than to any other family's
    for name in ("lstm (0.1M)", "lstm (3.2M)"):
        dist = {f: sum((a - b) ** 2 for a, b in zip(mixed[name], alone[f])) for f in alone}
        assert min(dist, key=dist.get) == "lstm"


def test_accuracy_by_attractors_is_tabled_from_the_records(results):
    md = build_report(results)["md"].read_text()
    section = md[md.index("by number of attractors") :]
    lstm_row = next(line for line in section.splitlines() if line.startswith("| lstm"))
    # lstm far accuracy 0.9 + 0.01 * seed over seeds 0..2, minus 0.1 per attractor: means 0.91, 0.81, 0.71
    assert [float(c.split()[0]) for c in lstm_row.strip("|").split("|")[1:4]] == pytest.approx([0.91, 0.81, 0.71])


def test_an_interval_never_leaves_the_metric_range():
    ci = mean_ci([0.99, 1.0, 0.9], 0, 1)
    assert ci.high == 1 and ci.low < ci.estimate < 1
    assert mean_ci([0.0, 0.5, 0.01], 0, None).low == 0


def test_mean_ci_matches_the_t_interval_by_hand():
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci.estimate == 2.0 and ci.high - 2.0 == pytest.approx(4.302653 / 3**0.5, rel=1e-5)
    assert np.isnan(mean_ci([1.0]).low)


def test_welch_difference_separates_clearly_different_groups():
    assert welch_diff([0.9, 0.91, 0.92], [0.5, 0.51, 0.52]).low > 0
    assert not welch_diff([0.5, 0.9, 0.1], [0.5, 0.2, 0.8]).excludes(0)

    flat = welch_diff([1, 1, 1], [0.999] * 3)  # no spread on either side: no evidence of the noise
    assert flat.estimate == pytest.approx(0.001) and not flat.excludes(0) and "no interval" in str(flat)


def test_ratio_of_medians_is_how_many_times_faster():
    ci = ratio_of_medians([1.0, 1.01, 0.99, 1.0], [2.0, 2.02, 1.98, 2.0])
    assert ci.estimate == pytest.approx(2.0) and ci.low > 1.9


def test_claims_with_no_data_say_so():
    empty = pd.DataFrame()
    table = claims.all_claims(empty, empty, empty)
    assert (table["verdict"] == "missing data").all()


def test_the_pretraining_figure_lists_encoders_in_the_one_order():
    rows = [
        {
            "task": "tagging",
            "encoder": e,
            "objective": "mlm",
            "tokens": t,
            "value": 0.5,
            "baseline": 0.1,
            "metric": "accuracy",
            "seed": s,
        }
        for e in ("cnn", "lstm", "transformer")
        for t in (0, 1000)
        for s in (0, 1)
    ]
    fig = figures.pretrain_gain(pd.DataFrame(rows), frames.encoder_order(["transformer", "cnn", "lstm"]))
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [x for x in labels if x != "baseline"] == ["lstm", "cnn", "transformer"] and "baseline" in labels


def test_pretraining_claims_are_judged_per_comparison_never_across():
    # a small comparison where the transformer gains most, a large one where it loses: never averaged together
    rows = []
    for budget, tokens, gain in (
        (2e5, 1000, {"lstm": 0.0, "cnn": 0.0, "transformer": 0.3}),
        (1e6, 5000, {"lstm": 0.2, "cnn": 0.2, "transformer": -0.2}),
    ):
        for i, e in enumerate(("lstm", "cnn", "transformer")):
            for t in (0, tokens):
                for s in range(3):  # gains that vary over seeds, differently per encoder
                    score = 0.5 + (gain[e] + 0.01 * ((s + i) % 3) if t else 0.0) + 0.01 * s
                    rows.append(
                        {
                            "task": "tagging",
                            "encoder": e,
                            "objective": "mlm",
                            "tokens": t,
                            "score": score,
                            "seed": s,
                            "budget": budget,
                            "encoder_params": budget,
                        }
                    )
    table = claims.all_claims(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(rows)).set_index("claim")
    most = table[table.index.str.startswith("Two-stage training helps the Transformer most")]
    assert list(most.index) == [
        "Two-stage training helps the Transformer most (0.2M-parameter comparison)",
        "Two-stage training helps the Transformer most (1M-parameter comparison)",
    ]
    assert list(most["verdict"]) == ["holds", "does not hold"]


def test_an_impossible_utilisation_is_ringed_and_explained(tmp_path):
    for encoder, factor in SPEED.items():
        r = speed_record(encoder, 128, factor)
        r.metrics = [{**m, "value": 1.4} if m["metric"] == "infer_mfu" and encoder == "lstm" else m for m in r.metrics]
        write_record(tmp_path, r)
    md = build_report(tmp_path)["md"].read_text()
    caption = next(line for line in md.splitlines() if line.startswith("*FLOP utilisation against sequence length."))
    assert "1 measurement exceeds 1, which is impossible" in caption
    speed = frames.speed(load_records(tmp_path))
    fig = figures.speed_lines(
        speed, {"infer_mfu": "inference"}, "FLOP utilisation", ["lstm", "cnn", "transformer"], log_y=False, limit=1.0
    )
    rings = [c for c in fig.axes[0].collections if len(c.get_offsets())]
    assert [tuple(c.get_offsets()[0]) for c in rings] == [(128, 1.4)], "only the impossible point is ringed"
    assert any("impossible" in t.get_text() for t in fig.legends[0].get_texts())


def probe_record(encoder, task, seed, accuracy, model=None):
    """A distance record of ``task`` at accuracy ``accuracy`` (one value, or one per distance) for every distance."""
    distances = [4, 8, 16]
    values = accuracy if isinstance(accuracy, list) else [accuracy] * len(distances)
    metrics = []
    for d, v in zip(distances, values):
        metrics += [
            {"setting": d, "metric": "accuracy", "value": v + 0.002 * seed},
            {"setting": d, "metric": "chance", "value": 1 / 32},
        ]
    metrics.append({"setting": "all", "metric": "effective_distance", "value": 4})
    info = {
        "metric": "accuracy",
        "distances": distances,
        "receptive_field": None,
        "encoder_params": 100_000,
        "convergence": "converged",
    }
    return Record(
        key=f"{task}-{encoder}-{seed}",
        suite="distance",
        encoder=encoder,
        task=task,
        seed=seed,
        status="ok",
        metrics=metrics,
        info=info,
        env=ENV,
        config={"model": {"name": (model or {}).get("name", encoder), **(model or {})}},
    )


def _literature(tmp_path, records):
    from bench.report import claims, frames

    for r in records:
        write_record(tmp_path, r)
    dist = frames.distance(load_records(tmp_path))
    return claims.all_claims(pd.DataFrame(), claims.unsized(dist), pd.DataFrame()).set_index("claim")


MQAR_CLAIM = "Attention beats recurrent and state-space models on multi-query associative recall at equal size"
COPY_CLAIM = "A selective state-space model solves selective copying where a time-invariant one does not"
PARITY_CLAIM = "Recurrent models track state (running parity) where attention of the same size does not"


@pytest.mark.parametrize(
    "transformer, lstm, verdict",
    [
        (0.99, 0.3, "holds"),
        (0.3, 0.99, "mixed"),
        (0.1, 0.99, "does not hold"),
        ([0.6, 0.4, 0.3], [0.5, 0.3, 0.2], "inconclusive"),
    ],
)
def test_the_recall_claim_compares_attention_with_every_recurrent_and_state_space_model(
    tmp_path, transformer, lstm, verdict
):
    records = [
        probe_record(e, "mqar", s, a) for e, a in (("transformer", transformer), ("lstm", lstm)) for s in range(3)
    ]
    records += [probe_record("ssm", "mqar", s, 0.2) for s in range(3)]
    row = _literature(tmp_path, records).loc[MQAR_CLAIM]
    assert row["verdict"] == verdict, row["evidence"]
    assert "ssm" in row["evidence"] and "lstm" in row["evidence"]
    if verdict == "inconclusive":
        assert row["evidence"].startswith("uninformative at this budget")


@pytest.mark.parametrize(
    "lstm, transformer, verdict",
    [(0.99, 0.55, "holds"), (0.55, 0.99, "does not hold"), ([0.7, 0.6, 0.65], [0.6, 0.5, 0.55], "inconclusive")],
)
def test_the_parity_claim_compares_every_rnn_with_every_attention_encoder(tmp_path, lstm, transformer, verdict):
    records = [
        probe_record(e, "parity", s, a)
        for e, a in (("lstm", lstm), ("gru", lstm), ("transformer", transformer), ("ssm", 0.5))
        for s in range(3)
    ]
    row = _literature(tmp_path, records).loc[PARITY_CLAIM]
    assert row["verdict"] == verdict, row["evidence"]
    assert "gru - transformer" in row["evidence"] and "ssm" not in row["evidence"]  # the SSM is in neither family
    if verdict == "inconclusive":
        assert row["evidence"].startswith("uninformative at this budget: no encoder solves the shortest")
    only_rnn = _literature(tmp_path / "rnn", [probe_record("lstm", "parity", s, 0.99) for s in range(3)])
    assert only_rnn.loc[PARITY_CLAIM]["verdict"] == "missing data"


def test_the_recall_claim_is_missing_without_mqar_records(tmp_path):
    row = _literature(tmp_path, [probe_record("transformer", "recall", 0, 0.9)]).loc[MQAR_CLAIM]
    assert row["verdict"] == "missing data" and "experiment=literature" in row["evidence"]


@pytest.mark.parametrize(
    "selective, invariant, verdict",
    [(0.98, 0.3, "holds"), (0.98, 0.95, "does not hold"), (0.4, 0.3, "inconclusive")],
)
def test_the_selective_copy_claim_contrasts_the_selective_and_the_time_invariant_ssm(
    tmp_path, selective, invariant, verdict
):
    records = [
        probe_record(label, "selective_copy", s, a, model={"name": "ssm", "selective": flag, **extra})
        for label, flag, a, extra in (
            ("ssm", True, selective, {}),
            ("ssm_lti", False, invariant, {"label": "ssm_lti"}),  # a preset of the ssm
        )
        for s in range(3)
    ]
    row = _literature(tmp_path, records).loc[COPY_CLAIM]
    assert row["verdict"] == verdict, row["evidence"]


def test_the_peak_table_names_every_path_and_says_when_the_theory_is_beaten(tmp_path):
    for encoder, factor in SPEED.items():
        r = speed_record(encoder, 128, factor)
        if encoder == "transformer":
            rates = {"linear": 170.0, "onednn_packed": 340.0}
            r.info["routes"] = {"256x768": {"path": "onednn_packed", "gflops": rates}}
        write_record(tmp_path, r)
    paths = {"matmul": {"flops": 190e9, "library": "MKL"}, "onednn_packed": {"flops": 430e9, "library": "oneDNN"}}
    peak = Record(
        key="speed-peak",
        suite="speed",
        encoder="lstm",
        task="gemm_peak",
        seed=None,
        status="ok",
        metrics=[{"setting": "fp32", "metric": "gemm_peak_flops", "value": 430e9}],
        info={
            "dtype": "fp32",
            "path": "onednn_packed",
            "library": "oneDNN",
            "paths": paths,
            "theoretical": {"flops": 332e9, "derivation": "2 cores x 2.60 GHz x 64 FLOP per cycle"},
        },
        env=ENV,
    )
    write_record(tmp_path, peak)
    md = build_report(tmp_path)["md"].read_text()
    assert "| fp32 | 430 | onednn_packed (oneDNN) | 190 | 430 | 332 |" in md
    assert "Theoretical fp32 peak: 2 cores x 2.60 GHz x 64 FLOP per cycle = 332 GFLOP/s; the measured best" in md
    assert "transformer fp32: 1 of 1 through onednn_packed (2.00x torch's own rate there)" in md


def test_the_breakdown_is_drawn_and_explained_fastest_first(tmp_path):
    shares = {"lstm": {"recurrence": 9.0, "memory copy": 1.0}, "cnn": {"convolution": 5.0, "elementwise": 4.0}}
    work = {"lstm": (1.6e6, 0.4), "cnn": (1.0e6, 0.5)}  # FLOPs per token and utilisation: cnn 2x = 1.6 x 1.25
    for encoder, ms in shares.items():
        record = speed_record(encoder, 128, SPEED[encoder])
        record.metrics = [m for m in record.metrics if m["metric"] != "infer_mfu"] + [
            {"setting": 128, "metric": "flops_per_token", "value": work[encoder][0]},
            {"setting": 128, "metric": "infer_mfu", "value": work[encoder][1]},
        ]
        write_record(tmp_path, record)
        libs = {"recurrence": "oneDNN", "convolution": "oneDNN"}
        write_record(
            tmp_path,
            Record(
                key=f"detail-{encoder}",
                suite="speed_detail",
                encoder=encoder,
                task="breakdown",
                seed=None,
                status="ok",
                metrics=[{"setting": c, "metric": "ms_per_call", "value": v} for c, v in ms.items()],
                info={
                    "dtype": "fp32",
                    "T": 128,
                    "B": 32,
                    "ms_by_library": {c: {libs.get(c, "native"): v} for c, v in ms.items()},
                },
                env=ENV,
            ),
        )
    out = build_report(tmp_path)
    md = out["md"].read_text()
    assert (out["figures"] / "speed_breakdown.png").exists()
    # the CNN is faster (SPEED), so it comes first; under 60% in its main category, its second is named too
    assert "fp32, T=128 (fastest first): cnn, " in md
    assert ": 56% convolution (oneDNN) and 44% elementwise (native); lstm, " in md
    assert ": 90% recurrence (oneDNN)." in md
    why = "Why: cnn is 2.00x as fast as lstm, 1.60x from its FLOPs per token (1.0M against 1.6M) and 1.25x from the"
    assert why in md and "(0.50 against 0.40)" in md


def _speed_frame(factors: dict, tmp_path) -> pd.DataFrame:
    for encoder, factor in factors.items():
        write_record(tmp_path, speed_record(encoder, 128, factor))
    return frames.speed(load_records(tmp_path))


def test_a_speed_difference_within_the_practical_margin_decides_nothing(tmp_path):
    # 5% apart, with intervals of about 1%: significant, but within the 10% margin
    speed = _speed_frame({"lstm": 1.0, "cnn": 1.05, "transformer": 2.0}, tmp_path)
    row = claims.speed_order(speed, ["cnn", "lstm"], "CNN > RNN", "infer")
    assert row["verdict"] == claims.UNSURE, row["evidence"]
    assert claims.speed_order(speed, ["lstm", "cnn"], "RNN > CNN", "infer")["verdict"] == claims.UNSURE
    assert claims.speed_order(speed, ["transformer", "cnn"], "T > CNN", "infer")["verdict"] == claims.HOLDS
    assert claims.speed_order(speed, ["lstm", "transformer"], "RNN > T", "infer")["verdict"] == claims.FAILS


@pytest.mark.parametrize(("factor", "verdict"), [(2.92, claims.UNSURE), (2.5, claims.FAILS), (3.5, claims.HOLDS)])
def test_a_factor_near_its_threshold_is_inconclusive(tmp_path, factor, verdict):
    speed = _speed_frame({"lstm": 1.0, "cnn": factor, "transformer": 1.0}, tmp_path)
    assert claims.rnn_slowdown(speed, "infer")["verdict"] == verdict


def test_holm_holds_the_family_of_sub_tests_to_five_percent():
    from bench.report.stats import holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # a p of 0.03 alone is significant; as one of eight sub-tests it is not
    assert holm([0.03])[0] < 0.05 and holm([0.03] + [0.5] * 7)[0] > 0.05
    assert math.isnan(holm([math.nan, 0.01])[0]) and holm([math.nan, 0.01])[1] == pytest.approx(0.02)


def test_sub_tests_decide_holds_fails_mixed_and_nothing_from_zero_variance():
    up, down, same = [0.9, 0.91, 0.92], [0.5, 0.51, 0.52], [0.7, 0.71, 0.72]
    assert claims.holm_verdict(claims.subtests([("a", up, same), ("b", same, down)])) == "holds"
    assert claims.holm_verdict(claims.subtests([("a", down, same)])) == "does not hold"
    assert claims.holm_verdict(claims.subtests([("a", up, same), ("b", down, same)])) == "mixed"
    flat = claims.subtests([("a", [1, 1, 1], [0.999] * 3)])  # no spread: no evidence of the noise, so no verdict
    assert claims.holm_verdict(flat) == "inconclusive" and math.isnan(flat[0].p)


def test_a_claim_on_a_run_that_has_not_converged_is_inconclusive_and_names_it(results):
    from bench.records import load_records

    records = load_records(results)
    acc, dist = frames.accuracy(records), frames.distance(records)
    acc.loc[(acc.encoder == "cnn") & (acc.task == "nli") & (acc.seed == 1), "convergence"] = "still improving"
    row = claims.task_order(claims.unsized(acc))
    assert row["verdict"] == "inconclusive"
    assert row["headline"] == "not converged: cnn nli seed 1 (still improving)"
    assert "it would read 'holds'" in row["evidence"] and "judged only on converged runs" in row["rule"]
    dist["convergence"] = None  # records from before statuses were recorded
    assert claims.cnn_behind(claims.unsized(dist))["verdict"] == "inconclusive"


def test_the_agreement_claim_needs_the_gap_to_grow_with_distance(tmp_path):
    # the lstm leads by 0.3 at every distance: ahead beyond 13, but not because of distance
    for encoder, near, far in (("lstm", 0.97, 0.97), ("transformer", 0.67, 0.67)):
        for seed in range(3):
            r = distance_record(encoder, seed, far)
            r.metrics = [
                {**m, "value": near + 0.01 * seed} if m["metric"] == "accuracy" and m["setting"] in (4, 8) else m
                for m in r.metrics
            ]
            write_record(tmp_path, r)
    dist = claims.unsized(frames.distance(load_records(tmp_path)))
    row = claims.agreement_beyond(dist)
    assert row["verdict"] == "inconclusive", row["evidence"]
    assert "not about distance" in row["evidence"] and "interaction" in row["evidence"]


def test_an_uninformative_probe_stays_out_of_the_claims(tmp_path):
    # agreement learned by the lstm (0.95 near); "recall" learned by nobody, where the cnn happens to lead
    for encoder, far, recall in (("lstm", 0.9, 0.20), ("cnn", 0.5, 0.30), ("transformer", 0.6, 0.22)):
        for seed in range(3):
            write_record(tmp_path, distance_record(encoder, seed, far))
            write_record(tmp_path, probe_record(encoder, "recall", seed, recall))
    dist = claims.unsized(frames.distance(load_records(tmp_path)))
    assert claims.informative(dist) == {"agreement": True, "recall": False}
    row = claims.cnn_behind(dist)
    assert row["verdict"] == "holds" and "recall" not in row["evidence"]
    assert "left out as uninformative at this budget: recall" in row["conditions"]
    only_recall = dist[dist["probe"] == "recall"]
    assert claims.cnn_behind(only_recall)["verdict"] == "inconclusive"
    text = build_report(tmp_path)["md"].read_text()
    assert "Uninformative at this budget, so kept out of the claims: recall" in text


def test_a_probe_only_some_encoders_ran_stays_out_of_the_cnn_claim(tmp_path):
    # parity, from experiment=literature, for the lstm and the transformer only: the cnn's mean would be over fewer
    # probes than theirs, so the probe counts for nobody
    for encoder, far in (("lstm", 0.9), ("cnn", 0.5), ("transformer", 0.6)):
        for seed in range(3):
            write_record(tmp_path, distance_record(encoder, seed, far))
            if encoder != "cnn":
                write_record(tmp_path, probe_record(encoder, "parity", seed, 0.99))
    dist = claims.unsized(frames.distance(load_records(tmp_path)))
    row = claims.cnn_behind(dist)
    assert row == claims.cnn_behind(dist[dist["probe"] != "parity"])
    assert "parity" not in row["evidence"] + row["conditions"] and row["verdict"] == "holds"


def test_pretraining_claims_wait_for_a_measurable_pretraining_effect():
    rows = [
        {
            "task": "tagging",
            "encoder": e,
            "objective": "mlm",
            "tokens": t,
            "score": 0.5 + 0.01 * s + (0.002 * i if t else 0.0),  # pre-training moved nothing beyond the seeds' noise
            "seed": s,
            "budget": 2e5,
            "encoder_params": 2e5,
        }
        for i, e in enumerate(("lstm", "cnn", "transformer"))
        for t in (0, 1000)
        for s in range(3)
    ]
    pre = pd.DataFrame(rows)
    for judge in (claims.pretrain_helps_transformer_most, claims.small_data_gap_closes):
        row = judge(pre)
        assert row["verdict"] == "inconclusive" and row["evidence"].startswith("no measurable pre-training effect")


def _copy_rows(cnn_ratio, lstm_ratio):
    return pd.DataFrame(
        [
            {
                "probe": "copy",
                "encoder": e,
                "family": f,
                "preset": False,
                "seed": s,
                "distance": 16,
                "metric": "accuracy",
                "value": 0.5,
                "loss": ratio * 0.5,
                "chance_loss": 0.5,
            }
            for e, f, ratio in (("cnn", "cnn", cnn_ratio), ("lstm", "rnn", lstm_ratio))
            for s in range(3)
        ]
    )


@pytest.mark.parametrize("cnn_ratio, lstm_ratio, verdict", [(0.02, 0.99, "reproduced"), (0.5, 0.99, "not reproduced")])
def test_the_copy_memory_reproduction_needs_the_cnn_solved_where_the_lstm_stays_on_the_baseline(
    cnn_ratio, lstm_ratio, verdict
):
    from bench.report import reproductions

    assert reproductions.copy_memory(_copy_rows(cnn_ratio, lstm_ratio))["verdict"] == verdict


def test_the_attractor_reproduction_needs_errors_rising_with_attractors():
    from bench.report import reproductions

    def rows(errors):
        return pd.DataFrame(
            [
                {
                    "probe": "agreement",
                    "encoder": "lstm",
                    "family": "rnn",
                    "preset": False,
                    "seed": s,
                    "attractors": k,
                    "metric": "accuracy",
                    "value": 1 - e - 0.005 * s,
                }
                for k, e in enumerate(errors)
                for s in range(3)
            ]
        )

    assert reproductions.attractors(rows([0.01, 0.05, 0.10, 0.20]))["verdict"] == "reproduced"
    flat = reproductions.attractors(rows([0.01, 0.01, 0.01, 0.01]))
    assert flat["verdict"] == "not reproduced" and "lstm error by attractors: 0: 1.5%" in flat["ours"]
    assert reproductions.attractors(pd.DataFrame())["verdict"] == "missing data"


def test_listops_is_judged_against_the_paper_within_its_tolerance():
    from bench.report import reproductions

    def rows(acc):
        return pd.DataFrame(
            [
                {
                    "probe": "listops",
                    "encoder": "transformer",
                    "family": "attention",
                    "preset": False,
                    "seed": 0,
                    "distance": d,
                    "value": acc,
                }
                for d in (1, 2)
            ]
        )

    assert reproductions.listops(rows(0.38))["verdict"] == "reproduced"
    assert reproductions.listops(rows(0.45))["verdict"] == "not reproduced"


def test_a_labelled_variant_sized_to_the_budget_stands_for_its_family_a_fixed_size_preset_does_not():
    def who(model):
        return frames._who({"config": {"model": model}, "encoder": model.get("label") or model["name"], "family": None})

    assert who({"name": "cnn", "label": "cnn_wide", "param_budget": 100000})["preset"] is False
    assert who({"name": "transformer", "label": "transformer_base", "d_model": 512, "param_budget": None})["preset"]
    assert who({"name": "cnn", "param_budget": 100000})["preset"] is False


def interleaved_record(factors: dict, T=128, rounds=7, drift=None):
    """A side-by-side measurement: per round, each encoder's time is 1/factor times the round's drift."""
    drift = drift or [1.0 + 0.3 * (r % 3) for r in range(rounds)]  # the machine slows by up to 60% between rounds
    rng = np.random.default_rng(0)
    times = {
        mode: {
            str(T): {
                e: [d / f * (3 if mode == "train" else 1) * rng.normal(1, 0.01) for d in drift]
                for e, f in factors.items()
            }
        }
        for mode in ("infer", "train")
    }
    info = {"dtype": "fp32", "encoders": list(factors), "B": {str(T): 32}, "rounds": rounds, "times_s": times}
    return Record(
        key="speed-sweep-interleaved",
        suite="speed",
        encoder=next(iter(factors)),
        task="interleaved",
        seed=None,
        status="ok",
        metrics=[],
        info=info,
        env=ENV,
    )


def test_side_by_side_ratios_pair_rounds_so_drift_between_rounds_cancels():
    from bench.report.stats import paired_ratio, ratio_of_medians

    drift = [1.0, 1.6, 1.0, 1.3, 1.0, 1.6, 1.3]
    a = [d / 1.2 for d in drift]  # a is 1.2x faster than b in every round
    b = list(drift)
    paired = paired_ratio(a, b)
    assert paired.estimate == pytest.approx(1.2)
    assert math.isnan(paired.low)  # identical per-round ratios: no spread, no interval
    b = [d * (1 + 0.02 * (-1) ** i) for i, d in enumerate(drift)]
    paired = paired_ratio(a, b)
    assert 1.15 < paired.low < paired.high < 1.25
    unpaired = ratio_of_medians(a, b)  # the drift swamps the same data unpaired
    assert unpaired.high - unpaired.low > 3 * (paired.high - paired.low)


def test_speed_claims_use_the_side_by_side_measurement_where_it_holds_their_encoders(tmp_path):
    # each job alone says cnn is 2x the lstm (one process drifted); side by side they are level
    for encoder, factor in {"lstm": 1.0, "cnn": 2.0, "transformer": 4.0}.items():
        write_record(tmp_path, speed_record(encoder, 128, factor))
    write_record(tmp_path, interleaved_record({"lstm": 1.0, "cnn": 1.02, "transformer": 4.0}))
    records = load_records(tmp_path)
    speed, inter = frames.speed(records), frames.interleaved(records)
    assert set(inter["encoder"]) == {"lstm", "cnn", "transformer"} and set(inter["mode"]) == {"infer", "train"}
    row = claims.speed_order(speed, ["cnn", "lstm"], "CNN > RNN", "infer", inter=inter)
    assert row["verdict"] == claims.UNSURE and "side by side in one process, 7 rounds" in row["evidence"]
    assert claims.speed_order(speed, ["cnn", "lstm"], "CNN > RNN", "infer")["verdict"] == claims.HOLDS  # per job
    slow = claims.rnn_slowdown(speed, "train", inter=inter)
    assert slow["verdict"] == claims.HOLDS and re.search(r"T=128 transformer (3.9|4.0)", slow["evidence"])
    # a pair the side-by-side measurement does not hold falls back to the jobs' own timings, and says so
    write_record(tmp_path, speed_record("gru", 128, 0.5))
    speed = frames.speed(load_records(tmp_path))
    row = claims.speed_order(speed, ["cnn", "gru"], "CNN > GRU", "infer", inter=inter)
    assert row["verdict"] == claims.HOLDS and "own job" in row["evidence"]


def test_the_report_tables_side_by_side_ratios_beside_the_per_job_ones(tmp_path):
    for encoder, factor in {"lstm": 1.0, "cnn": 2.0, "transformer": 4.0}.items():
        write_record(tmp_path, speed_record(encoder, 128, factor))
    write_record(tmp_path, interleaved_record({"lstm": 1.0, "cnn": 1.02, "transformer": 4.0}))
    build_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "speed over the lstm's, fp32: measured side by side in one process (7 rounds" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| inference | 128 | 32 | transformer |"))
    side, job = line.split("|")[5:7]
    assert float(side.split()[0]) == pytest.approx(4.0, rel=0.03) and float(job.split()[0]) == pytest.approx(4.0, 0.03)
    cnn = next(ln for ln in md.splitlines() if ln.startswith("| inference | 128 | 32 | cnn |"))
    assert float(cnn.split("|")[5].split()[0]) == pytest.approx(1.02, rel=0.03)
    assert float(cnn.split("|")[6].split()[0]) == pytest.approx(2.0, rel=0.03)


def runtime_record(encoder, T, rates: dict, failed: dict | None = None):
    """A speed_detail runtime record: per runtime, 7 interleaved call times at the given tokens/s."""
    rng = np.random.default_rng(T)
    runs = {
        name: {
            "status": "ok",
            "times": list(32 * T / rate * rng.normal(1, 0.01, 7)),
            "tokens_per_s": rate,
            "max_abs_error": 2e-6,
            "tolerance": 5e-3,
            "facts": {"exporter": "torchscript (traced)"} if name == "onnxruntime" else {},
        }
        for name, rate in rates.items()
    }
    runs.update({name: {"status": "failed", "reason": why} for name, why in (failed or {}).items()})
    info = {"dtype": "fp32", "T": T, "B": 32, "params": 1000, "runtimes": runs, "failed": failed or {}}
    return Record(
        key=f"speed_detail-{encoder}-runtime-{T}",
        suite="speed_detail",
        encoder=encoder,
        task="runtime",
        seed=None,
        status="ok",
        metrics=[],
        info=info,
        env=ENV,
    )


def test_speed_claims_are_judged_again_under_each_encoders_fastest_runtime(tmp_path):
    for encoder, factor in {"lstm": 1.0, "cnn": 2.0, "transformer": 4.0}.items():
        write_record(tmp_path, speed_record(encoder, 128, factor))
    write_record(tmp_path, runtime_record("lstm", 128, {"eager": 1000, "compile": 900, "onnxruntime": 3000}))
    write_record(tmp_path, runtime_record("cnn", 128, {"eager": 2000, "onnxruntime": 1900}, {"compile": "no C++"}))
    write_record(tmp_path, runtime_record("transformer", 128, {"eager": 4000, "compile": 4100, "onnxruntime": 2500}))
    build_report(tmp_path)
    verdicts = pd.read_csv(tmp_path / "claims.csv").set_index("claim")["verdict"]
    assert verdicts["The RNN is 3x to tens of times slower (inference, fp32)"] == claims.HOLDS  # eager: 4x
    under = verdicts["The RNN is 3x to tens of times slower (inference under each encoder's fastest runtime, fp32)"]
    assert under == claims.FAILS  # ONNX Runtime makes the LSTM 3x faster: 4100 / 3000 = 1.4x
    md = (tmp_path / "report.md").read_text()
    lstm = next(ln for ln in md.splitlines() if ln.startswith("| lstm | 128 | 32 |"))
    assert "onnxruntime (3.00x eager)" in lstm and "2.0e-06" in lstm
    cnn = next(ln for ln in md.splitlines() if ln.startswith("| cnn | 128 | 32 |"))
    assert "failed: no C++" in cnn and "| eager |" in cnn
    assert "Export: torchscript (traced)." in md


def test_the_side_by_side_table_finds_the_per_job_ratio_where_encoders_carry_their_size(tmp_path):
    for budget in (1000, 2000):  # two comparisons: every encoder is labelled with its size
        for encoder, factor in {"lstm": 1.0, "cnn": 2.0}.items():
            record = speed_record(encoder, 128, factor)
            record.key, record.config = f"{record.key}-{budget}", {"param_budget": budget}
            write_record(tmp_path, record)
    side = interleaved_record({"lstm": 1.0, "cnn": 1.5})
    side.config = {"param_budget": 2000}
    write_record(tmp_path, side)
    build_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| inference | 128 | 32 | cnn (0.002M) |"))
    side_ratio, per_job = row.split("|")[5:7]
    assert float(side_ratio.split()[0]) == pytest.approx(1.5, rel=0.03) and float(per_job.split()[0]) == pytest.approx(
        2.0, rel=0.03
    )


def test_a_pick_resting_on_unconverged_runs_says_so_and_the_evidence_counts_the_rule(tmp_path):
    for encoder, values in {"lstm": [0.80, 0.81, 0.82], "cnn": [0.70, 0.71, 0.72]}.items():
        for seed, value in enumerate(values):
            record = accuracy_record(encoder, "sent", seed, value)
            record.info.update(steps=300, best_step=300 if encoder == "lstm" and seed < 2 else 200)
            if record.info["best_step"] == 300:
                record.info["convergence"] = "still improving"
            write_record(tmp_path, record)
    md = build_report(tmp_path)["md"].read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| sent"))
    assert "best; all others significantly lower; not converged: lstm 2 of 3 runs" in line
    assert "of 6 trained runs judged by the convergence rule, 4 converged, 2 still improving" in md
