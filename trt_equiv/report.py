"""Tables and reports: the terminal table of ``trt-equiv check``, and the Markdown / self-contained HTML
report with the equivalence table, the throughput table and plots (``--report DIR``, ``trt-equiv report``)."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.bench import UNSTABLE_CV
from trt_equiv.compare import REFERENCE_LABEL, TABLE_COLUMNS, Comparison
from trt_equiv.errors import InputValidationError
from trt_equiv.runtime import require

COLUMNS = TABLE_COLUMNS  # one set of names for tolerance keys, metrics and table headers


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:.4f}"
    return str(value)


def table_rows(comparisons: Sequence[Comparison]) -> list[list[str]]:
    return [[_cell(c.row().get(key)) for key, _ in COLUMNS] for c in comparisons]


def format_table(comparisons: Sequence[Comparison]) -> str:
    """Fixed-width text table, one row per comparison."""
    header = [title for _, title in COLUMNS]
    rows = table_rows(comparisons)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(comparisons: Sequence[Comparison]) -> str:
    header = [title for _, title in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(comparisons)]
    return "\n".join(lines)


def write_check_report(
    directory: str | Path, comparisons: Sequence[Comparison], skipped: Sequence[tuple[str, str]] = ()
) -> list[Path]:
    """Write ``equivalence.md`` and ``equivalence.json`` into ``directory``; returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# trt_equiv equivalence report", "", markdown_table(comparisons), ""]
    if skipped:
        md += ["## Not run here", ""] + [f"- `{label}`: {reason}" for label, reason in skipped] + [""]
    failures = [c for c in comparisons if not c]
    if failures:
        md += ["## Failures", ""] + [f"```\n{c.report()}\n```\n" for c in failures]
    md_path, json_path = out / "equivalence.md", out / "equivalence.json"
    md_path.write_text("\n".join(md))
    payload = {
        "passed": bool(comparisons) and all(comparisons),
        "comparisons": [{**c.row(), "violations": c.violations, "structural_error": c.structural_error}
                        for c in comparisons],
        "skipped": [{"candidate": label, "reason": reason} for label, reason in skipped],
    }  # fmt: skip
    json_path.write_text(json.dumps(payload, indent=2, default=str))
    return [md_path, json_path]


# ------------------------------------------------------------------------------------------ throughput


@dataclass(frozen=True)
class BenchRow:
    """One benchmarked (backend, precision, batch size), from pytest-benchmark JSON or ``trt-equiv bench``."""

    backend: str
    precision: str
    batch_size: int
    samples_per_s: float
    median_s: float
    p99_s: float | None = None
    cv: float | None = None
    device_median_s: float | None = None
    load_s: float | None = None
    artefact_bytes: int | None = None

    @property
    def label(self) -> str:
        return f"{self.backend}-{self.precision}"


def bench_rows_from_json(payload: dict[str, Any]) -> list[BenchRow]:
    """Rows from a pytest-benchmark ``--benchmark-json`` file (or ``trt-equiv bench --json``).

    Entries without backend/batch ``extra_info`` (e.g. the harness-overhead pair) are not throughput rows.
    """
    rows = []
    for bench in payload.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "backend" not in info or "batch_size" not in info:
            continue
        if "precision" not in info:
            raise InputValidationError(f"benchmark {bench.get('name', '?')}: expected extra_info.precision, got {info}")
        stats = bench.get("stats") or {}
        median = info.get("median_s", stats.get("median"))
        if not median:
            continue
        batch = int(info["batch_size"])
        rows.append(
            BenchRow(
                backend=info["backend"], precision=info["precision"], batch_size=batch,
                samples_per_s=float(info.get("samples_per_s", batch / median)), median_s=float(median),
                p99_s=info.get("p99_s"), cv=info.get("cv"), device_median_s=info.get("device_median_s"),
                load_s=info.get("load_s"), artefact_bytes=info.get("artefact_bytes"),
            )
        )  # fmt: skip
    return rows


def throughput_markdown(rows: Sequence[BenchRow]) -> str:
    """samples/s per backend × batch size, speed-up against the SavedModel, artefact size and load time."""
    batches = sorted({r.batch_size for r in rows})
    labels = list(dict.fromkeys(r.label for r in rows))
    by = {(r.label, r.batch_size): r for r in rows}
    baseline = {b: by[("savedmodel-fp32", b)].samples_per_s for b in batches if ("savedmodel-fp32", b) in by}
    head = ["backend", *[f"b{b} samples/s" for b in batches], *[f"b{b} ×SM" for b in batches], "size", "load s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in labels:
        cells = [label]
        cells += [f"{by[(label, b)].samples_per_s:,.0f}" if (label, b) in by else "-" for b in batches]
        cells += [
            f"{by[(label, b)].samples_per_s / baseline[b]:.2f}" if (label, b) in by and b in baseline else "-"
            for b in batches
        ]
        any_row = next(by[(label, b)] for b in batches if (label, b) in by)
        cells.append(_size(any_row.artefact_bytes))
        cells.append("-" if any_row.load_s is None else f"{any_row.load_s:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    unstable = [f"{r.label} b{r.batch_size} (cv {r.cv:.1%})" for r in rows if r.cv is not None and r.cv > UNSTABLE_CV]
    if unstable:
        lines += ["", "Unstable (coefficient of variation > 1 %): " + ", ".join(unstable)]
    return "\n".join(lines)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


# ------------------------------------------------------------------------------------------------ plots


def plot_throughput(rows: Sequence[BenchRow], path: Path) -> Path:
    """Throughput against batch size, one line per backend × precision."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in dict.fromkeys(r.label for r in rows):
        pts = sorted((r.batch_size, r.samples_per_s) for r in rows if r.label == label)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set(xlabel="batch size", ylabel="samples / s", title="Throughput by batch size", yscale="log")
    ax.set_xscale("log", base=2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_errors(outputs: dict[str, np.ndarray], reference: str, path: Path) -> Path:
    """Distribution of |candidate − reference| per backend × precision (log scale)."""
    plt = _pyplot()
    ref = outputs[reference]
    labels = [k for k in outputs if k != reference]
    data = [np.abs(outputs[k].astype(np.float64) - ref).ravel() + 1e-12 for k in labels]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if data:
        ax.boxplot(data, tick_labels=labels, showfliers=True, whis=(1, 99))
    ax.set(ylabel=f"|output − {reference}|", yscale="log", title="Error distribution per backend × precision")
    ax.tick_params(axis="x", labelrotation=20)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pyplot():
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # files only; never a window
    return require("matplotlib.pyplot")


# ----------------------------------------------------------------------------------------------- report


def write_report(
    directory: str | Path,
    *,
    comparisons: Sequence[Comparison] = (),
    skipped: Sequence[tuple[str, str]] = (),
    bench: Sequence[BenchRow] = (),
    outputs: dict[str, np.ndarray] | None = None,
    reference: str = REFERENCE_LABEL,
) -> list[Path]:
    """``report.md`` and a self-contained ``report.html`` (plots inlined), plus the plots as PNG files."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    sections: list[tuple[str, str]] = []  # (title, markdown)
    images: list[tuple[str, Path]] = []
    if comparisons:
        written += write_check_report(out, comparisons, skipped)
        sections.append(("Equivalence", markdown_table(comparisons)))
        if outputs and reference in outputs and len(outputs) > 1:
            images.append(("Error distribution", plot_errors(outputs, reference, out / "errors.png")))
    if bench:
        sections.append(("Throughput", throughput_markdown(bench)))
        images.append(("Throughput", plot_throughput(bench, out / "throughput.png")))
    written += [p for _, p in images]
    md = ["# trt_equiv report", ""]
    for title, body in sections:
        md += [f"## {title}", "", body, ""]
    md += [f"![{title}]({p.name})" for title, p in images]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n")
    html_path = out / "report.html"
    html_path.write_text(_html(sections, images))
    return [md_path, html_path, *written]


def _html(sections: Sequence[tuple[str, str]], images: Sequence[tuple[str, Path]]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>trt_equiv report</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}",
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child{text-align:left}",
        ".FAIL{background:#fdd}.PASS{background:#dfd}</style></head><body><h1>trt_equiv report</h1>",
    ]
    for title, body in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>{_md_table_to_html(body)}")
    for title, path in images:
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(
            f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table_to_html(markdown: str) -> str:
    """The Markdown tables this module writes, as HTML (no Markdown library needed)."""
    rows, other = [], []
    for line in markdown.splitlines():
        if line.startswith("|") and not set(line) <= set("|-"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif line.strip():
            other.append(f"<p>{html.escape(line)}</p>")
    if not rows:
        return "".join(other)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td class='{html.escape(c)}'>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<table><tr>{head}</tr>{body}</table>" + "".join(other)
