"""The report's figures: seaborn, one palette and one encoder order for every figure.

String columns used for hue/style/col are cast to ``object`` first: seaborn
0.13.2 mis-orders categorical and string-array hues under pandas 3
(seaborn #3893, #3922), so legends could silently stop matching the data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.report.stats import mean_ci  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


FAMILIES = ("lstm", "cnn", "transformer")  # one colour each, in every figure of every report


def family_of(name: str) -> str:
    """'lstm (0.3M)' -> 'lstm': the encoder a sized label belongs to."""
    return name.split(" (")[0]


def palette(order: list[str]) -> dict[str, tuple]:
    """A colour per encoder name, fixed by its family: lstm, cnn and transformer keep theirs in every
    figure; several sizes of one family are shades of its colour (darker = larger); other presets
    take the palette's next colours in order."""
    base = sns.color_palette("colorblind", 10)
    family_colors = {f: base[i] for i, f in enumerate(FAMILIES)}
    spare = iter(base[len(FAMILIES) :])
    colors = {}
    for family in dict.fromkeys(family_of(n) for n in order):
        if family not in family_colors:
            family_colors[family] = next(spare, (0.4, 0.4, 0.4))
        members = [n for n in order if family_of(n) == family]
        for i, name in enumerate(members):
            # mix towards white (small) or black (large): within +-40% around the family's colour
            t = 0.0 if len(members) == 1 else -0.4 + 0.8 * i / (len(members) - 1)
            target = 0.0 if t > 0 else 1.0
            colors[name] = tuple(c + abs(t) * (target - c) for c in family_colors[family][:3])
    return colors


def _objects(frame: pd.DataFrame, *columns) -> pd.DataFrame:
    frame = frame.copy()
    for c in columns:
        frame[c] = frame[c].astype(object)
    return frame


def save(fig, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(out_dir / f"{name}.{ext}", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out_dir / f"{name}.png"


def speed_lines(speed: pd.DataFrame, value_columns: dict[str, str], ylabel: str, order, log_y=True):
    """tokens/s (or memory, MFU) against T: one panel per mode, hue = encoder, style = dtype."""
    long = speed.melt(id_vars=["encoder", "dtype", "T"], value_vars=[c for c in value_columns if c in speed],
                      var_name="mode", value_name="value").dropna(subset=["value"])  # fmt: skip
    long["mode"] = long["mode"].map(value_columns)
    long = _objects(long, "encoder", "dtype", "mode")
    present = [e for e in order if e in set(long["encoder"])]
    grid = sns.relplot(data=long, x="T", y="value", hue="encoder", hue_order=present, style="dtype",
                       col="mode", kind="line", marker="o", palette=palette(order), height=3.6, aspect=1.15,
                       facet_kws={"sharey": False})  # fmt: skip
    for ax in grid.axes.flat:
        ax.set_xscale("log", base=2)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("sequence length T (tokens)")
    grid.set_ylabels(ylabel)
    grid.set_titles("{col_name}")
    return grid.figure


def distance_curves(dist: pd.DataFrame, order) -> plt.Figure:
    """Metric against distance per probe: mean over seeds with a 95% t band; chance dashed."""
    probes = list(dict.fromkeys(dist["probe"]))
    cols = min(3, len(probes))
    rows = -(-len(probes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.4 * rows), squeeze=False)
    colors = palette(order)
    for ax, probe in zip(axes.flat, probes):
        part = dist[dist["probe"] == probe]
        for encoder in [e for e in order if e in set(part["encoder"])]:
            rows_e = part[part["encoder"] == encoder]
            summary = [(d, mean_ci(g["value"])) for d, g in rows_e.groupby("distance")]
            xs = [d for d, _ in summary]
            ax.plot(xs, [ci.estimate for _, ci in summary], marker="o", color=colors[encoder], label=encoder)
            low, high = [ci.low for _, ci in summary], [ci.high for _, ci in summary]
            top = np.inf if part["metric"].iloc[0] == "mse" else 1.0  # bands clipped to what the metric can reach
            low, high = np.clip(low, 0.0, top), np.clip(high, 0.0, top)
            if not np.all(np.isnan(low)):
                ax.fill_between(xs, low, high, color=colors[encoder], alpha=0.18, linewidth=0)
        chance = part.groupby("distance")["chance"].mean()
        ax.plot(chance.index, chance.values, linestyle="--", color="grey", label="chance / trivial")
        metric = part["metric"].iloc[0]
        ax.set_xscale("log", base=2)
        ax.set_title(probe)
        ax.set_xlabel("distance d (tokens)")
        ax.set_ylabel("test MSE (lower is better)" if metric == "mse" else "test accuracy")
    for ax in list(axes.flat)[len(probes) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.04))
    fig.tight_layout()
    return fig


def reach_curves(dist: pd.DataFrame, order) -> plt.Figure:
    """Empirical reach: mean |d output(t) / d input(t - d)| against d, each run scaled to its
    largest value, per probe (log scale); distances where it is exactly zero are left out."""
    frame = dist.dropna(subset=["grad_reach"]).copy()
    frame["reach"] = frame["grad_reach"] / frame.groupby(["probe", "encoder", "seed"])["grad_reach"].transform("max")
    frame = frame[frame["reach"] > 0]  # exactly zero (past a receptive field) has no place on a log axis
    frame = _objects(frame, "encoder", "probe")
    present = [e for e in order if e in set(frame["encoder"])]
    grid = sns.relplot(data=frame, x="distance", y="reach", hue="encoder", hue_order=present, col="probe",
                       col_wrap=min(3, frame["probe"].nunique()), kind="line", marker="o", palette=palette(order),
                       errorbar=None, height=3.0, aspect=1.2, facet_kws={"sharey": False})  # fmt: skip
    for ax in grid.axes.flat:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    grid.set_axis_labels("distance d (tokens)", "gradient reach (relative)")
    grid.set_titles("{col_name}")
    return grid.figure


def accuracy_points(acc: pd.DataFrame, order) -> plt.Figure:
    """Test metric per task: mean over seeds with 95% t error bars; the baseline dashed."""
    tasks = list(dict.fromkeys(acc["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.6), squeeze=False)
    colors = palette(order)
    for ax, task in zip(axes.flat, tasks):
        part = acc[acc["task"] == task]
        present = [e for e in order if e in set(part["encoder"])]
        for i, encoder in enumerate(present):
            ci = mean_ci(part[part["encoder"] == encoder]["value"])
            err = None if np.isnan(ci.low) else [[ci.estimate - ci.low], [ci.high - ci.estimate]]
            ax.errorbar([i], [ci.estimate], yerr=err, fmt="o", color=colors[encoder], capsize=4, markersize=7,
                        label=encoder)  # fmt: skip
        ax.axhline(part["baseline"].mean(), linestyle="--", color="grey", label="baseline")
        ax.set_xticks(range(len(present)), present, rotation=30)
        ax.set_xlim(-0.6, len(present) - 0.4)
        kind = part["type"].iloc[0]
        ax.set_title(task if task == kind else f"{task} ({kind})")
        ax.set_ylabel(f"test {part['metric'].iloc[0]}")
    fig.tight_layout()
    return fig


def pareto(acc: pd.DataFrame, order) -> plt.Figure:
    """Test metric against training throughput per task; the non-dominated encoders joined."""
    tasks = list(dict.fromkeys(acc["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.4), squeeze=False)
    colors = palette(order)
    for ax, task in zip(axes.flat, tasks):
        part = acc[acc["task"] == task].groupby("encoder")[["train_tokens_per_s", "value"]].mean()
        for encoder in [e for e in order if e in part.index]:
            ax.scatter(part.loc[encoder, "train_tokens_per_s"], part.loc[encoder, "value"], color=colors[encoder],
                       s=60, label=encoder)  # fmt: skip
        ranked = part.sort_values("train_tokens_per_s", ascending=False)
        front, best = [], -np.inf
        for encoder, row in ranked.iterrows():
            if row["value"] > best:
                front.append(encoder)
                best = row["value"]
        ax.plot(part.loc[front, "train_tokens_per_s"], part.loc[front, "value"], color="grey", linewidth=1, zorder=0)
        low, high = part["train_tokens_per_s"].min(), part["train_tokens_per_s"].max()
        ax.set_xlim(low - 0.15 * (high - low) - 0.05 * low, high + 0.15 * (high - low) + 0.05 * high)
        ax.xaxis.set_major_locator(plt.MaxNLocator(3))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x / 1e3:.3g}k"))
        ax.set_xlabel("training throughput (tokens/s)")
        ax.set_ylabel(f"test {acc[acc['task'] == task]['metric'].iloc[0]}")
        ax.set_title(task)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


def pretrain_gain(pre: pd.DataFrame, order) -> plt.Figure:
    """Fine-tuned test metric against pre-training tokens (0: from scratch), one panel per task:
    mean over seeds with 95% t error bars; one line per encoder and objective."""
    tasks = list(dict.fromkeys(pre["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.3 * len(tasks), 3.5), squeeze=False)
    colors = palette(order)
    styles = {o: s for o, s in zip(sorted(set(pre["objective"])), ["-", "--", ":"])}
    for ax, task in zip(axes.flat, tasks):
        part = pre[pre["task"] == task]
        groups = dict(list(part.groupby(["encoder", "objective"])))
        rank = {e: i for i, e in enumerate(order)}
        for encoder, objective in sorted(groups, key=lambda k: (rank.get(k[0], len(rank)), k[1])):  # the one encoder order
            g = groups[(encoder, objective)]
            points = [(t, mean_ci(h["value"])) for t, h in g.groupby("tokens")]
            xs = [t for t, _ in points]
            ys = [ci.estimate for _, ci in points]
            err = [[0 if np.isnan(ci.low) else ci.estimate - ci.low for _, ci in points],
                   [0 if np.isnan(ci.high) else ci.high - ci.estimate for _, ci in points]]  # fmt: skip
            label = encoder if len(styles) == 1 else f"{encoder} {objective}"
            ax.errorbar(xs, ys, yerr=err, color=colors.get(encoder), linestyle=styles[objective], marker="o",
                        capsize=3, label=label)  # fmt: skip
        ax.axhline(part["baseline"].mean(), linestyle="--", color="grey", linewidth=1, label="baseline")
        ax.set_xscale("symlog", linthresh=max(1, min([t for t in part["tokens"] if t > 0], default=1)))
        ax.set_xlabel("pre-training tokens (0 = scratch)")
        ax.set_ylabel(f"test {part['metric'].iloc[0]}")
        ax.set_title(task)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    return fig


def pretrain_loss(curves: pd.DataFrame, order) -> plt.Figure:
    """Pre-training loss against tokens seen, per encoder (seeds pooled: mean and 95% band)."""
    data = _objects(curves.assign(run=curves["encoder"] + " " + curves["objective"]), "encoder", "objective", "run")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    present = [e for e in order if e in set(data["encoder"])]
    sns.lineplot(data=data, x="tokens", y="loss", hue="encoder", hue_order=present, style="objective",
                 palette=palette(order), errorbar=("ci", 95), ax=ax)  # fmt: skip
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("pre-training loss (nats per predicted token)")
    fig.tight_layout()
    return fig
