"""Tables and reports: the terminal table of ``trt-equiv check`` and the files written by ``--report``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from trt_equiv.compare import Comparison

COLUMNS = (
    ("candidate", "candidate"), ("reference", "reference"), ("batch", "batch"), ("policy", "policy"),
    ("max_abs", "max_abs"), ("mean_abs", "mean_abs"), ("p99_abs", "p99_abs"), ("rel_l2", "rel_l2"),
    ("min_cosine", "min_cos"), ("top1", "top1"), ("accuracy", "acc"), ("accuracy_delta", "Δacc"),
    ("verdict", "verdict"), ("stage", "blamed stage"),
)  # fmt: skip


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
