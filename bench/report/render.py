"""One report, two renderings: Markdown (figures linked) and self-contained HTML (figures embedded)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # ("p", text) | ("table", frame, caption) | ("figure", path, caption)

    def text(self, paragraph: str) -> None:
        self.blocks.append(("p", paragraph))

    def table(self, frame: pd.DataFrame, caption: str = "") -> None:
        self.blocks.append(("table", frame, caption))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", path, caption))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines)


def to_markdown(title: str, sections: list[Section], base: Path) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for kind, *rest in section.blocks:
            if kind == "p":
                out += [rest[0], ""]
            elif kind == "table":
                frame, caption = rest
                out += ([f"*{caption}*", ""] if caption else []) + [markdown_table(frame), ""]
            else:
                path, caption = rest
                out += [f"![{caption}]({path.relative_to(base).as_posix()})", "", f"*{caption}*", ""]
    return "\n".join(out)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.9em}th,td{border:1px solid #ddd;padding:.3em .6em;
vertical-align:top}th{background:#f5f5f5}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0 2em}figure img{max-width:100%}figcaption,.caption{color:#555;font-size:.9em;font-style:italic}
.holds{color:#1a7f37;font-weight:600}.does-not-hold{color:#cf222e;font-weight:600}
.inconclusive{color:#9a6700;font-weight:600}.missing-data{color:#6e7781;font-weight:600}
"""


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column, value in zip(frame.columns, row):
            text = html.escape(_cell(value))
            css = f' class="{_cell(value).replace(" ", "-")}"' if column == "verdict" else ""
            cells.append(f"<td{css}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def to_html(title: str, sections: list[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        for kind, *rest in section.blocks:
            if kind == "p":
                body.append(f"<p>{html.escape(rest[0])}</p>")
            elif kind == "table":
                frame, caption = rest
                body.append((f'<p class="caption">{html.escape(caption)}</p>' if caption else "") + _html_table(frame))
            else:
                path, caption = rest
                data = base64.b64encode(Path(path).read_bytes()).decode()
                body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")  # fmt: skip
