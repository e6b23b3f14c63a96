"""The report's figures: one colour per family, one marker per size, one encoder order, in every figure.

Lines and points are drawn with matplotlib, one labelled artist per encoder, so a legend is built from
the very artists it names. Where seaborn draws a hue (the pre-training loss), string columns are cast
to ``object`` first: seaborn 0.13.2 mis-orders categorical and string-array hues under pandas 3
(seaborn #3893, #3922), so legends could silently stop matching the data. Multi-panel figures wrap
into rows of at most ``MAX_COLS`` panels, each legible at the page's width; every interval is clipped
to what its metric can reach; a legend sits outside the panels, never over data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

import models
from bench import roles
from bench.breakdown import CATEGORIES
from bench.convergence import CONVERGED
from bench.report.frames import name_of
from bench.report.render import human
from bench.report.stats import RANGES, mean_ci

sns.set_theme(style="whitegrid", context="notebook")
matplotlib.rcParams["svg.hashsalt"] = "fxbench"  # deterministic clip-path ids in the SVGs

MARKERS = ("o", "s", "^", "D", "v", "X", "P", "*")  # by size within a family, smallest first
DTYPE_STYLES = {"fp32": "-", "bf16": "--", "fp16": "-."}
MAX_COLS = 4
PANEL = (3.4, 2.9)  # inches per panel: at dpi 110 four panels fill a 1200 px page with text still legible


def palette(order: list[str]) -> dict[str, tuple]:
    """A colour per encoder name, fixed by its encoder: each of ``models/`` keeps its own in every
    figure (in the one order of ``bench.roles``); several sizes of one family are shades of its colour (darker = larger) among the encoders a
    figure shows, and each size keeps its marker in every figure (``markers``); other presets take the
    palette's next colours in order."""
    base = sns.color_palette("colorblind", 10)
    encoders = roles.ordered(models.available())  # every encoder of this checkout keeps its colour everywhere
    family_colors = {f: base[i] for i, f in enumerate(encoders[: len(base)])}
    spare = iter(base[len(family_colors) :])
    colors = {}
    for family in dict.fromkeys(name_of(n) for n in order):
        if family not in family_colors:
            family_colors[family] = next(spare, (0.4, 0.4, 0.4))
        members = [n for n in order if name_of(n) == family]
        for i, name in enumerate(members):
            # mix towards white (small) or black (large): within +-45% around the family's colour
            t = 0.0 if len(members) == 1 else -0.45 + 0.9 * i / (len(members) - 1)
            target = 0.0 if t > 0 else 1.0
            colors[name] = tuple(c + abs(t) * (target - c) for c in family_colors[family][:3])
    return colors


def markers(order: list[str]) -> dict[str, str]:
    """A marker per encoder name: the n-th size of a family takes the n-th marker."""
    seen: dict[str, int] = {}
    out = {}
    for name in order:
        i = seen.get(name_of(name), 0)
        seen[name_of(name)] = i + 1
        out[name] = MARKERS[i % len(MARKERS)]
    return out


def _colours(order: list[str], frame: pd.DataFrame) -> dict[str, tuple]:
    """The palette over the encoders ``frame`` holds, in the report's order."""
    return palette([e for e in order if e in set(frame["encoder"])])


def _objects(frame: pd.DataFrame, *columns) -> pd.DataFrame:
    frame = frame.copy()
    for c in columns:
        frame[c] = frame[c].astype(object)
    return frame


def save(fig, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "svg"):  # no date, fixed SVG ids: the same records give the same files
        fig.savefig(
            out_dir / f"{name}.{ext}", dpi=110, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None
        )
    plt.close(fig)
    return out_dir / f"{name}.png"


def panels(n: int, width: float = PANEL[0], height: float = PANEL[1]):
    """A figure of ``n`` panels in rows of at most MAX_COLS; the unused cells are switched off."""
    cols = max(1, min(MAX_COLS, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def legend_below(fig, axes, extra: list | None = None, order: list[str] | None = None) -> None:
    """One legend for the whole figure, under the panels: every labelled artist of every panel, once, the
    encoders first in ``order`` (a label 'lstm mlm' ranks as 'lstm'), then the rest in drawing order, then
    ``extra`` handles (dtype styles, reference lines)."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if order:
        drawn = list(labels)

        def rank(label):
            matches = [i for i, e in enumerate(order) if label == e or label.startswith(e + " ")]
            return (0, max(matches, key=lambda i: len(order[i]))) if matches else (1, drawn.index(label))

        labels.sort(key=rank)
    for handle in extra or []:
        if handle.get_label() not in handles:
            handles[handle.get_label()] = handle
            labels.append(handle.get_label())
    fig.tight_layout()
    if not labels:
        return
    widest = min(len(labels), max(3, int(fig.get_figwidth() / 1.9)))  # about as wide as the panels
    rows = -(-len(labels) // widest)
    ncol = -(-len(labels) // rows)  # balanced rows: read down each column, a family's sizes stand together
    fig.legend(
        [handles[label] for label in labels],
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=ncol,
        frameon=False,
    )


def _interval(values, low_bound, high_bound):
    """Mean and its clipped 95% t interval as (estimate, low error, high error) for an error bar."""
    ci = mean_ci(values, low_bound, high_bound)
    if np.isnan(ci.low):
        return ci.estimate, 0.0, 0.0
    return ci.estimate, max(0.0, ci.estimate - ci.low), max(0.0, ci.high - ci.estimate)


def speed_lines(speed: pd.DataFrame, value_columns: dict[str, str], ylabel: str, order, log_y=True, limit=None):
    """tokens/s (or memory, MFU) against T: one panel per mode, colour and marker = encoder, line style =
    dtype. ``limit``: a value no measurement can exceed (MFU 1); points above it are ringed in red and the
    figure says why."""
    columns = [c for c in value_columns if c in speed and speed[c].notna().any()]
    fig, axes = panels(len(columns), width=4.2, height=3.3)
    colors, marks = _colours(order, speed), markers(order)
    dtypes = [d for d in dict.fromkeys(speed["dtype"]) if isinstance(d, str)]
    styles = {d: DTYPE_STYLES.get(d, ":" if "compile" in d else "-.") for d in dtypes}
    over = 0
    for ax, column in zip(axes, columns):
        for encoder in [e for e in order if e in set(speed["encoder"])]:
            for dtype in dtypes:
                part = speed[(speed["encoder"] == encoder) & (speed["dtype"] == dtype)].dropna(subset=[column])
                if part.empty:
                    continue
                part = part.groupby("T")[column].mean()
                (line,) = ax.plot(
                    part.index,
                    part.values,
                    color=colors[encoder],
                    marker=marks[encoder],
                    linestyle=styles[dtype],
                    markersize=5,
                    label=encoder,
                )
                line.set_gid(f"{encoder}|{dtype}")
                if limit is not None and (part > limit).any():
                    above = part[part > limit]
                    over += len(above)
                    ax.scatter(above.index, above.values, s=90, facecolors="none", edgecolors="red", zorder=5)
        if limit is not None:
            ax.axhline(limit, color="red", linewidth=0.8, linestyle=":")
        ax.set_xscale("log", base=2)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("sequence length T (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_title(value_columns[column])
    extra = [Line2D([], [], color="grey", linestyle=styles[d], label=d) for d in dtypes] if len(dtypes) > 1 else []
    if over:
        extra.append(
            Line2D(
                [],
                [],
                marker="o",
                markerfacecolor="none",
                markeredgecolor="red",
                linestyle="",
                label=f"above {limit}: impossible (see the caption)",
            )
        )
    legend_below(fig, axes, extra, order=order)
    return fig


CATEGORY_COLOURS = dict(zip(CATEGORIES, sns.color_palette("Set2", len(CATEGORIES))))  # bench.breakdown's order


def breakdown_bars(frame: pd.DataFrame, order) -> plt.Figure:
    """Share of each profiled inference call by category of operator: one stacked bar per encoder, dtype and T
    (encoders in the one order), one panel per dtype."""
    dtypes = list(dict.fromkeys(frame["dtype"]))
    bars = frame.drop_duplicates(["encoder", "dtype", "T"])
    n_bars = max(len(bars[bars["dtype"] == d]) for d in dtypes)
    legend_h, height = 0.8, 1.0 + 0.34 * n_bars + 0.8  # inches: the legend's band under the panels, the figure
    fig, axes = plt.subplots(1, len(dtypes), figsize=(5.2 * len(dtypes), height), squeeze=False)
    axes = axes[0]
    rank = {e: i for i, e in enumerate(order)}
    for ax, dtype in zip(axes, dtypes):
        part = frame[frame["dtype"] == dtype]
        keys = sorted({(e, T) for e, T in zip(part["encoder"], part["T"])}, key=lambda k: (rank.get(k[0], 99), k[1]))
        labels = [f"{e}, T={T}" for e, T in keys]
        left = np.zeros(len(keys))
        for cat, colour in CATEGORY_COLOURS.items():
            share = np.array(
                [
                    part[(part["encoder"] == e) & (part["T"] == T) & (part["category"] == cat)]["share"].sum()
                    for e, T in keys
                ]
            )
            ax.barh(labels, share, left=left, color=colour, label=cat)
            left += share
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of an inference call")
        ax.set_title(dtype)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in CATEGORY_COLOURS.values()]
    fig.legend(handles, list(CATEGORY_COLOURS), loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0))
    fig.tight_layout(rect=(0, legend_h / height, 1, 1))
    return fig


def probe_axis(probe: str) -> str:
    """What a probe's distance measures (nesting depth for ListOps), as its probe class declares."""
    from bench.probes import PROBES

    return getattr(PROBES.get(probe), "distance_axis", "distance d (tokens)")


def converged(rows: pd.DataFrame) -> bool:
    """Whether every training run behind ``rows`` converged (bench.convergence); True where no status is kept."""
    return "convergence" not in rows or bool((rows["convergence"] == CONVERGED).all())


def distance_curves(dist: pd.DataFrame, order) -> plt.Figure:
    """Metric against distance per probe: mean over seeds with a 95% t band; chance dashed; an encoder's
    markers hollow where some of its runs on the probe had not converged."""
    probes = list(dict.fromkeys(dist["probe"]))
    fig, axes = panels(len(probes), width=3.8, height=3.1)
    colors, marks = _colours(order, dist), markers(order)
    for ax, probe in zip(axes, probes):
        part = dist[dist["probe"] == probe]
        metric = part["metric"].iloc[0]
        top = np.inf if metric == "mse" else 1.0  # bands clipped to what the metric can reach
        for encoder in [e for e in order if e in set(part["encoder"])]:
            rows_e = part[part["encoder"] == encoder]
            summary = [(d, mean_ci(g["value"], 0.0, top)) for d, g in rows_e.groupby("distance")]
            xs = [d for d, _ in summary]
            (line,) = ax.plot(
                xs,
                [ci.estimate for _, ci in summary],
                marker=marks[encoder],
                color=colors[encoder],
                label=encoder,
                markersize=5,
                markerfacecolor=colors[encoder] if converged(rows_e) else "white",
            )
            line.set_gid(encoder)
            low, high = np.array([ci.low for _, ci in summary]), np.array([ci.high for _, ci in summary])
            if not np.all(np.isnan(low)):
                ax.fill_between(xs, low, high, color=colors[encoder], alpha=0.18, linewidth=0)
        chance = part.groupby("distance")["chance"].mean()
        ax.plot(chance.index, chance.values, linestyle="--", color="grey", label="chance / trivial")
        ax.set_xscale("log", base=2)
        ax.set_title(probe)
        ax.set_xlabel(probe_axis(probe))
        ax.set_ylabel("test MSE (lower is better)" if metric == "mse" else "test accuracy")
    legend_below(fig, axes, order=order)
    return fig


def reach_curves(dist: pd.DataFrame, order) -> plt.Figure:
    """Empirical reach: mean |d output(t) / d input(t - d)| against d, each run scaled to its
    largest value, per probe (log scale); distances where it is exactly zero are left out."""
    frame = dist.dropna(subset=["grad_reach"]).copy()
    frame["reach"] = frame["grad_reach"] / frame.groupby(["probe", "encoder", "seed"])["grad_reach"].transform("max")
    frame = frame[frame["reach"] > 0]  # exactly zero (past a receptive field) has no place on a log axis
    probes = list(dict.fromkeys(frame["probe"]))
    fig, axes = panels(len(probes), width=3.8, height=3.1)
    colors, marks = _colours(order, frame), markers(order)
    for ax, probe in zip(axes, probes):
        part = frame[frame["probe"] == probe]
        for encoder in [e for e in order if e in set(part["encoder"])]:
            mean = part[part["encoder"] == encoder].groupby("distance")["reach"].mean()
            (line,) = ax.plot(
                mean.index, mean.values, marker=marks[encoder], color=colors[encoder], label=encoder, markersize=5
            )
            line.set_gid(encoder)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(probe)
        ax.set_xlabel(probe_axis(probe))
        ax.set_ylabel("gradient reach (relative)")
    legend_below(fig, axes, order=order)
    return fig


def _task_title(part: pd.DataFrame, task: str) -> str:
    kind = part["type"].iloc[0] if "type" in part else task
    return task if task == kind else f"{task} ({kind})"


def accuracy_points(acc: pd.DataFrame, order) -> plt.Figure:
    """Test metric per task: mean over seeds with 95% t error bars clipped to the metric's range; the
    baseline dashed; a marker hollow where some of the seeds had not converged."""
    tasks = list(dict.fromkeys(acc["task"]))
    fig, axes = panels(len(tasks), width=3.1, height=3.0)
    colors, marks = _colours(order, acc), markers(order)
    for ax, task in zip(axes, tasks):
        part = acc[acc["task"] == task]
        metric = part["metric"].iloc[0]
        present = [e for e in order if e in set(part["encoder"])]
        for i, encoder in enumerate(present):
            rows = part[part["encoder"] == encoder]
            y, below, above = _interval(rows["value"], *RANGES.get(metric, (None, None)))
            ax.errorbar(
                [i],
                [y],
                yerr=[[below], [above]],
                fmt=marks[encoder],
                color=colors[encoder],
                capsize=4,
                markersize=7,
                label=encoder,
                markerfacecolor=colors[encoder] if converged(rows) else "white",
            )
        ax.axhline(part["baseline"].mean(), linestyle="--", color="grey", label="baseline")
        ax.set_xticks(range(len(present)), present, rotation=30, ha="right")
        ax.set_xlim(-0.6, len(present) - 0.4)
        ax.set_title(_task_title(part, task))
        ax.set_ylabel(f"test {metric}")
    legend_below(fig, axes, order=order)
    return fig


def pareto(acc: pd.DataFrame, order, picks: dict | None = None) -> plt.Figure:
    """Test metric (95% t interval, clipped) against training throughput per task; the encoders no other
    beats on both joined in grey; ``picks`` (task -> the encoders picked) ringed."""
    tasks = list(dict.fromkeys(acc["task"]))
    fig, axes = panels(len(tasks), width=3.3, height=3.0)
    colors, marks = _colours(order, acc), markers(order)
    for ax, task in zip(axes, tasks):
        rows = acc[acc["task"] == task]
        metric = rows["metric"].iloc[0]
        part = rows.groupby("encoder")[["train_tokens_per_s", "value"]].mean()
        for encoder in [e for e in order if e in part.index]:
            y, below, above = _interval(rows[rows["encoder"] == encoder]["value"], *RANGES.get(metric, (None, None)))
            ax.errorbar(
                [part.loc[encoder, "train_tokens_per_s"]],
                [y],
                yerr=[[below], [above]],
                fmt=marks[encoder],
                color=colors[encoder],
                markersize=7,
                capsize=3,
                label=encoder,
            )
            if picks and encoder in picks.get(task, ()):
                ax.scatter(
                    [part.loc[encoder, "train_tokens_per_s"]],
                    [y],
                    s=260,
                    facecolors="none",
                    edgecolors="black",
                    linewidths=1.4,
                    zorder=5,
                )
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
        ax.set_ylabel(f"test {metric}")
        ax.set_title(_task_title(rows, task))
    ring = Line2D(
        [], [], marker="o", markersize=14, markerfacecolor="none", markeredgecolor="black", linestyle="", label="pick"
    )
    legend_below(fig, axes, [ring] if picks else None, order=order)
    return fig


def pretrain_gain(pre: pd.DataFrame, order) -> plt.Figure:
    """Fine-tuned test metric against pre-training tokens (0: from scratch), one panel per task:
    mean over seeds with 95% t error bars (clipped); one line per encoder and objective."""
    tasks = list(dict.fromkeys(pre["task"]))
    fig, axes = panels(len(tasks), width=3.4, height=3.0)
    colors, marks = _colours(order, pre), markers(order)
    styles = {o: s for o, s in zip(sorted(set(pre["objective"])), ["-", "--", ":", "-."])}
    rank = {e: i for i, e in enumerate(order)}
    for ax, task in zip(axes, tasks):
        part = pre[pre["task"] == task]
        metric = part["metric"].iloc[0]
        groups = dict(list(part.groupby(["encoder", "objective"])))
        for encoder, objective in sorted(
            groups, key=lambda k: (rank.get(k[0], len(rank)), k[1])
        ):  # the one encoder order
            points = [
                (t, _interval(h["value"], *RANGES.get(metric, (None, None))))
                for t, h in groups[(encoder, objective)].groupby("tokens")
            ]
            xs = [t for t, _ in points]
            ys, below, above = ([p[i] for _, p in points] for i in range(3))
            label = encoder if len(styles) == 1 else f"{encoder} {objective}"
            ax.errorbar(
                xs,
                ys,
                yerr=[below, above],
                color=colors.get(encoder),
                linestyle=styles[objective],
                marker=marks.get(encoder, "o"),
                capsize=3,
                markersize=5,
                label=label,
            )
        ax.axhline(part["baseline"].mean(), linestyle="--", color="grey", linewidth=1, label="baseline")
        ax.set_xscale("symlog", linthresh=max(1, min([t for t in part["tokens"] if t > 0], default=1)))
        ticks = sorted(set(part["tokens"]))  # the token counts measured, named as a person reads them
        ax.set_xticks(ticks, [human(t) for t in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("pre-training tokens (0 = scratch)")
        ax.set_ylabel(f"test {metric}")
        ax.set_title(task)
    legend_below(fig, axes, order=order)
    return fig


def pretrain_loss(curves: pd.DataFrame, order) -> plt.Figure:
    """Pre-training loss against tokens seen, per encoder (seeds pooled: mean and 95% band): on held-out
    sentences where the records have it, else the training loss; the legend beside the axes, off the curves."""
    data = _objects(curves, "encoder", "objective")
    held_out = "heldout_loss" in data and data["heldout_loss"].notna().any()
    if held_out:
        data = data[data["heldout_loss"].notna()]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    present = [e for e in order if e in set(data["encoder"])]
    sns.lineplot(
        data=data,
        x="tokens",
        y="heldout_loss" if held_out else "loss",
        hue="encoder",
        hue_order=present,
        style="objective",
        palette=_colours(order, data),
        errorbar=("ci", 95),
        ax=ax,
    )
    ax.set_xlabel("tokens seen")
    ax.set_ylabel(f"{'held-out' if held_out else 'training'} loss (nats per predicted token)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def learning_curves(curves: pd.DataFrame, order) -> plt.Figure:
    """Validation metric against training seconds on this machine, one panel per trained task or probe,
    one thin line per (encoder, seed): which encoder gets there first, not only how far it gets."""
    panels_of = list(dict.fromkeys(zip(curves["suite"], curves["task"])))
    fig, axes = panels(len(panels_of), width=3.3, height=2.8)
    colors = _colours(order, curves)
    for ax, (suite, task) in zip(axes, panels_of):
        part = curves[(curves["suite"] == suite) & (curves["task"] == task)]
        for encoder in [e for e in order if e in set(part["encoder"])]:
            for i, (_, run) in enumerate(part[part["encoder"] == encoder].groupby("seed")):
                ax.plot(
                    run["seconds"],
                    run["value"],
                    color=colors[encoder],
                    linewidth=1,
                    alpha=0.8,
                    label=encoder if i == 0 else None,
                )
        metric = part["metric"].iloc[0]
        if metric == "mse":
            ax.set_yscale("log")
        ax.set_title(task)
        ax.set_xlabel("training seconds")
        ax.set_ylabel(f"validation {metric}")
    legend_below(fig, axes, order=order)
    return fig
