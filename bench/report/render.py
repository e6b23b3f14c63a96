"""One report, two renderings: Markdown (figures linked) and self-contained HTML (figures embedded).

Numbers are written for people (``37.7k``, ``3.2M``, ``0.91``), a missing value is a dash, never
``nan``; long material goes behind a fold (``<details>``) in both renderings.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DASH = "–"  # a cell with no measurement

# column names as a reader sees them, with their units
HEADERS = {
    "encoder_params": "encoder params",
    "params": "params",
    "train_tokens_per_s": "training (tok/s)",
    "infer_tokens_per_s": "inference (tok/s)",
    "receptive_field": "receptive field (tokens)",
    "effective_distance": "effective distance",
    "seconds": "wall (s)",
    "tokens": "pre-training tokens",
    "T": "T (tokens)",
    "B": "batch",
}


def header(column) -> str:
    return HEADERS.get(str(column), str(column))


@dataclass
class Section:
    title: str
    blocks: list = field(
        default_factory=list
    )  # ("p" | "banner", text) | ("table", frame, caption) | ("figure", path, caption)
    # | ("details", summary, Section): blocks behind a fold

    def text(self, paragraph: str) -> None:
        self.blocks.append(("p", paragraph))

    def banner(self, paragraph: str) -> None:
        """A warning a reader must see before any number (a smoke run's verdicts are not evidence)."""
        self.blocks.append(("banner", paragraph))

    def table(self, frame: pd.DataFrame, caption: str = "") -> None:
        self.blocks.append(("table", frame, caption))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", path, caption))

    def details(self, summary: str) -> Section:
        """A fold: the returned section's blocks are shown when the reader opens it."""
        inner = Section(summary)
        self.blocks.append(("details", summary, inner))
        return inner


def human(value) -> str:
    """A number as a person reads it: 3 significant digits, k / M / G past ten thousand, a dash for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)) and abs(value) < 10_000:
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
            if abs(v) >= scale:
                return f"{v / (scale if suffix != 'k' else 1e3):.3g}{suffix}"
        if abs(v) >= 100 or v == int(v):
            return f"{v:.0f}"
        return f"{v:.3g}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    columns = [header(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(human(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines)


def anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _markdown_blocks(blocks, base: Path) -> list[str]:
    out = []
    for kind, *rest in blocks:
        if kind == "p":
            out += [rest[0], ""]
        elif kind == "banner":
            out += [f"> **{rest[0]}**", ""]
        elif kind == "table":
            frame, caption = rest
            out += ([f"*{caption}*", ""] if caption else []) + [markdown_table(frame), ""]
        elif kind == "details":
            summary, inner = rest
            out += [
                f"<details><summary>{summary}</summary>",
                "",
                *_markdown_blocks(inner.blocks, base),
                "</details>",
                "",
            ]
        else:
            path, caption = rest
            out += [f"![{caption}]({path.relative_to(base).as_posix()})", "", f"*{caption}*", ""]
    return out


def to_markdown(title: str, sections: list[Section], base: Path) -> str:
    out = [f"# {title}", "", "Contents: " + " · ".join(f"[{s.title}](#{anchor(s.title)})" for s in sections), ""]
    for section in sections:
        out += [f"## {section.title}", "", *_markdown_blocks(section.blocks, base)]
    return "\n".join(out)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em;margin-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}
nav{font-size:.9em;display:flex;flex-wrap:wrap;gap:.2em 1em}nav a{white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.4em 0 1.2em;font-size:.88em}th,td{border:1px solid #ddd;padding:.25em .55em;
vertical-align:top}th{background:#f5f5f5}tr:nth-child(even) td{background:#fafafa}td.num{text-align:right;white-space:nowrap}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto}figcaption,.caption{color:#555;font-size:.9em;font-style:italic}
.banner{background:#fff8c5;border:1px solid #d4a72c;padding:.6em .9em;border-radius:4px;font-weight:600}
details{margin:.6em 0 1.2em}summary{cursor:pointer;color:#0969da}
td.holds,td.does-not-hold,td.inconclusive,td.missing-data{white-space:nowrap}
.holds{color:#1a7f37;font-weight:600}.does-not-hold{color:#cf222e;font-weight:600}
.inconclusive{color:#9a6700;font-weight:600}.missing-data{color:#6e7781;font-weight:600}
"""


def _numeric(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(header(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column, value in zip(frame.columns, row):
            text = human(value)
            css = (
                f' class="{text.replace(" ", "-")}"'
                if column == "verdict"
                else ' class="num"'
                if _numeric(value)
                else ""
            )
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _html_blocks(blocks) -> list[str]:
    body = []
    for kind, *rest in blocks:
        if kind == "p":
            body.append(f"<p>{html.escape(rest[0])}</p>")
        elif kind == "banner":
            body.append(f'<p class="banner" role="alert">{html.escape(rest[0])}</p>')
        elif kind == "table":
            frame, caption = rest
            body.append((f'<p class="caption">{html.escape(caption)}</p>' if caption else "") + _html_table(frame))
        elif kind == "details":
            summary, inner = rest
            body.append(
                f"<details><summary>{html.escape(summary)}</summary>{''.join(_html_blocks(inner.blocks))}</details>"
            )
        else:
            path, caption = rest
            data = base64.b64encode(Path(path).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    return body


def to_html(title: str, sections: list[Section]) -> str:
    toc = "".join(f'<a href="#{anchor(s.title)}">{html.escape(s.title)}</a>' for s in sections)
    body = [f"<h1>{html.escape(title)}</h1>", f'<nav aria-label="contents">{toc}</nav>']
    for section in sections:
        body.append(f'<h2 id="{anchor(section.title)}">{html.escape(section.title)}</h2>')
        body += _html_blocks(section.blocks)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
