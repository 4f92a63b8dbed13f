"""Tables and reports: the terminal table of ``trt-equiv check``, and the Markdown / self-contained HTML
report with the equivalence table, the throughput table and plots (``--report DIR``, ``trt-equiv report``)."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trt_equiv.bench import UNSTABLE_CV, machine_label
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


#: one equivalence row: a live Comparison, or its JSON form from ``equivalence.json``
EquivalenceRow = Comparison | Mapping[str, Any]


def _row_dict(c: EquivalenceRow) -> Mapping[str, Any]:
    return c.row() if isinstance(c, Comparison) else c


def _failed(c: EquivalenceRow) -> bool:
    return not c if isinstance(c, Comparison) else c.get("verdict") != "PASS"


def _failure_text(c: EquivalenceRow) -> str:
    """The full failure report: ``Comparison.report()``, or what ``equivalence.json`` kept of it."""
    if isinstance(c, Comparison):
        return c.report()
    if c.get("report"):
        return str(c["report"])
    lines = [
        f"{c.get('verdict', 'FAIL')}: {c.get('candidate')} vs reference {c.get('reference')} (batch {c.get('batch')})"
    ]
    if c.get("stage"):
        lines.append(f"  blamed stage: {c['stage']}")
    if c.get("structural_error"):
        lines.append(f"  {c['structural_error']}")
    lines += [f"  {v}" for v in c.get("violations") or ()]
    return "\n".join(lines)


def table_rows(comparisons: Sequence[EquivalenceRow]) -> list[list[str]]:
    return [[_cell(_row_dict(c).get(key)) for key, _ in COLUMNS] for c in comparisons]


def format_table(comparisons: Sequence[Comparison]) -> str:
    """Fixed-width text table, one row per comparison."""
    header = [title for _, title in COLUMNS]
    rows = table_rows(comparisons)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown_table(comparisons: Sequence[EquivalenceRow]) -> str:
    return _md_table([title for _, title in COLUMNS], table_rows(comparisons))


def equivalence_sections(
    comparisons: Sequence[EquivalenceRow], skipped: Sequence[tuple[str, str]] = ()
) -> list[tuple[str, str]]:
    """(title, Markdown) of the equivalence table, the not-run list and the failure details."""
    sections = [("Equivalence", markdown_table(comparisons))]
    if skipped:
        sections.append(("Not run here", "\n".join(f"- `{label}`: {reason}" for label, reason in skipped)))
    failures = [c for c in comparisons if _failed(c)]
    if failures:
        sections.append(("Failures", "\n\n".join(f"```\n{_failure_text(c)}\n```" for c in failures)))
    return sections


def write_check_report(
    directory: str | Path, comparisons: Sequence[Comparison], skipped: Sequence[tuple[str, str]] = ()
) -> list[Path]:
    """Write ``equivalence.md`` and ``equivalence.json`` into ``directory``; returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# trt_equiv equivalence report", ""]
    for title, body in equivalence_sections(comparisons, skipped):
        md += ([] if title == "Equivalence" else [f"## {title}", ""]) + [body, ""]
    md_path, json_path = out / "equivalence.md", out / "equivalence.json"
    md_path.write_text("\n".join(md))
    payload = {
        "passed": bool(comparisons) and all(comparisons),
        "comparisons": [{**c.row(), "violations": c.violations, "structural_error": c.structural_error,
                         "report": None if c else c.report()} for c in comparisons],
        "skipped": [{"candidate": label, "reason": reason} for label, reason in skipped],
    }  # fmt: skip
    json_path.write_text(json.dumps(payload, indent=2, default=str))
    return [md_path, json_path]


def load_equivalence_json(path: str | Path) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(comparison rows, not-run list) from an ``equivalence.json`` written by ``check --report``."""
    payload = _read_json(path, "--equivalence-json")
    where = f"--equivalence-json {path}"
    if not isinstance(payload, dict) or not isinstance(payload.get("comparisons"), list):
        raise InputValidationError(f"{where}: expected an object with a 'comparisons' list, got {_kind(payload)}")
    rows = payload["comparisons"]
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not {"candidate", "reference", "verdict"} <= set(row):
            raise InputValidationError(
                f"{where}: comparison #{i}: expected an object with candidate, reference and verdict, got {_kind(row)}"
            )
    skipped_raw = payload.get("skipped", [])
    if not isinstance(skipped_raw, list) or not all(
        isinstance(s, dict) and isinstance(s.get("candidate"), str) and isinstance(s.get("reason"), str)
        for s in skipped_raw
    ):
        raise InputValidationError(f"{where}: 'skipped' must be a list of {{candidate, reason}} strings")
    return rows, [(s["candidate"], s["reason"]) for s in skipped_raw]


def _read_json(path: str | Path, flag: str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputValidationError(f"{flag}: expected a readable JSON file, got {path} ({exc})") from exc


def _kind(value: object) -> str:
    text = json.dumps(value, default=str)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"


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
    #: None when the file does not say (older files): judged by ``cv > UNSTABLE_CV`` then
    stable: bool | None = None
    rounds: int | None = None
    target_cv: float | None = None
    timed: str | None = None
    outputs_checked: int | None = None
    outputs_matched: bool | None = None
    raw_call: str | None = None
    raw_samples_per_s: float | None = None
    overhead: float | None = None
    #: which machine measured it (``bench.machine_label`` of the file's machine info)
    machine: str = ""

    @property
    def label(self) -> str:
        return f"{self.backend}-{self.precision}"

    @property
    def is_unstable(self) -> bool:
        if self.stable is not None:
            return not self.stable
        return self.cv is not None and self.cv > (self.target_cv or UNSTABLE_CV)

    def as_json(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}


_NUMBERS = ("samples_per_s", "median_s", "p99_s", "cv", "device_median_s", "load_s", "target_cv",
            "raw_samples_per_s", "overhead")  # fmt: skip
_INTEGERS = ("batch_size", "artefact_bytes", "rounds", "outputs_checked")


def bench_rows_from_json(payload: object, source: str = "--benchmark-json") -> list[BenchRow]:
    """Rows from a pytest-benchmark ``--benchmark-json`` file (or ``trt-equiv bench --json``).

    Entries without backend/batch ``extra_info`` (e.g. the harness-overhead pair) are not throughput rows.
    A file of another shape, or text where numbers belong, is an ``InputValidationError`` naming the field.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("benchmarks", []), list):
        raise InputValidationError(f"{source}: expected an object with a 'benchmarks' list, got {_kind(payload)}")
    info_obj = payload.get("machine_info") or {}
    machine = machine_label(info_obj) if isinstance(info_obj, dict) else ""
    rows = []
    for i, bench in enumerate(payload.get("benchmarks", [])):
        where = f"{source}: benchmark #{i} ({bench.get('name', '?') if isinstance(bench, dict) else '?'})"
        if not isinstance(bench, dict) or not isinstance(bench.get("extra_info", {}), dict):
            raise InputValidationError(f"{where}: expected an object with an 'extra_info' object, got {_kind(bench)}")
        info = bench.get("extra_info", {})
        if "backend" not in info or "batch_size" not in info:
            continue
        if "precision" not in info:
            raise InputValidationError(f"{where}: expected extra_info.precision, got {info}")
        stats = bench.get("stats") or {}
        fields = {k: info.get(k) for k in (*_NUMBERS, *_INTEGERS)}
        if fields["median_s"] is None and isinstance(stats, dict):
            fields["median_s"] = stats.get("median")
        for key, value in fields.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputValidationError(f"{where}: expected a number for {key}, got {value!r}")
            if key in _INTEGERS and value != int(value):
                raise InputValidationError(f"{where}: expected an integer for {key}, got {value!r}")
        if not fields["median_s"]:
            continue
        batch = int(fields["batch_size"])
        if batch < 1:
            raise InputValidationError(f"{where}: expected batch_size >= 1, got {batch}")
        fields["samples_per_s"] = fields["samples_per_s"] or batch / fields["median_s"]
        texts = {k: info.get(k) for k in ("timed", "raw_call")}
        flags = {k: info.get(k) for k in ("stable", "outputs_matched")}
        for key, value in [*texts.items(), *flags.items()]:
            wanted = str if key in texts else bool
            if value is not None and not isinstance(value, wanted):
                raise InputValidationError(f"{where}: expected {wanted.__name__} for {key}, got {value!r}")
        rows.append(BenchRow(backend=str(info["backend"]), precision=str(info["precision"]), **fields, **texts,
                             **flags, machine=machine))  # fmt: skip
    return rows


def _sps(row: BenchRow) -> str:
    """samples/s, marked † when the row is unstable."""
    return f"{row.samples_per_s:,.0f}" + (" †" if row.is_unstable else "")


def throughput_markdown(rows: Sequence[BenchRow], rule: str | None = None) -> str:
    """samples/s per backend × batch size (one column per machine when rows come from several), speed-up
    against the SavedModel, the harness overhead against the raw runtime call, artefact size and load time."""
    machines = list(dict.fromkeys(r.machine for r in rows))
    body = _multi_machine_table(rows, machines) if len(machines) > 1 else _single_machine_table(rows)
    lines = [body]
    unstable = [r for r in rows if r.is_unstable]
    if unstable:
        listed = ", ".join(
            f"{r.label} b{r.batch_size}" + (f" on {r.machine}" if len(machines) > 1 else "")
            + (f" (CoV {r.cv:.1%})" if r.cv is not None else "")
            for r in unstable
        )  # fmt: skip
        lines += ["", f"† unstable: CoV of round means above the target when the time budget ran out: {listed}"]
    checked = [r for r in rows if r.outputs_checked]
    if checked:
        total = sum(r.outputs_checked or 0 for r in checked)
        matched = all(r.outputs_matched is not False for r in checked)
        lines += ["", f"Outputs checked while timing: {total} sampled timed calls in {len(checked)} rows, "
                      f"{'all matched the verified outputs' if matched else 'SOME DID NOT MATCH'}."]  # fmt: skip
    timed = list(dict.fromkeys(f"{r.backend}: {r.timed}" for r in rows if r.timed))
    if timed:
        lines += ["", "What was timed: " + "; ".join(timed) + "."]
    if rule:
        lines += ["", f"How: {rule}."]
    return "\n".join(lines)


def _single_machine_table(rows: Sequence[BenchRow]) -> str:
    batches = sorted({r.batch_size for r in rows})
    labels = list(dict.fromkeys(r.label for r in rows))
    by = {(r.label, r.batch_size): r for r in rows}
    baseline = {b: by[("savedmodel-fp32", b)].samples_per_s for b in batches if ("savedmodel-fp32", b) in by}
    head = ["backend", *[f"b{b} samples/s" for b in batches], *[f"b{b} ×SM" for b in batches]]
    head += ["CoV (max)", "raw call", "raw samples/s", "harness overhead", "size", "load s"]
    table = []
    for label in labels:
        mine = [by[(label, b)] for b in batches if (label, b) in by]
        cells = [label]
        cells += [_sps(by[(label, b)]) if (label, b) in by else "-" for b in batches]
        cells += [
            f"{by[(label, b)].samples_per_s / baseline[b]:.2f}" if (label, b) in by and b in baseline else "-"
            for b in batches
        ]
        cvs = [r.cv for r in mine if r.cv is not None]
        cells.append(f"{max(cvs):.1%}" if cvs else "-")
        with_raw = next((r for r in reversed(mine) if r.raw_samples_per_s is not None), None)
        if with_raw is not None:
            cells += [f"{with_raw.raw_call} (b{with_raw.batch_size})", f"{with_raw.raw_samples_per_s:,.0f}",
                      "-" if with_raw.overhead is None else f"{with_raw.overhead:+.1%}"]  # fmt: skip
        else:
            cells += ["-", "-", "-"]
        cells.append(_size(mine[0].artefact_bytes))
        cells.append("-" if mine[0].load_s is None else f"{mine[0].load_s:.2f}")
        table.append(cells)
    return _md_table(head, table)


def _multi_machine_table(rows: Sequence[BenchRow], machines: Sequence[str]) -> str:
    keys = list(dict.fromkeys((r.label, r.batch_size) for r in sorted(rows, key=lambda r: (r.label, r.batch_size))))
    by = {(r.machine, r.label, r.batch_size): r for r in rows}
    head = ["backend", "batch", *[f"{m or 'unknown machine'} samples/s" for m in machines]]
    table = [[label, str(batch), *[_sps(by[(m, label, batch)]) if (m, label, batch) in by else "-" for m in machines]]
             for label, batch in keys]  # fmt: skip
    return _md_table(head, table)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


# ------------------------------------------------------------------------------------------------ plots


def plot_throughput(rows: Sequence[BenchRow], path: Path) -> Path:
    """Throughput against batch size, one line per (machine,) backend × precision; unstable points hollow grey."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    machines = list(dict.fromkeys(r.machine for r in rows))
    styles = ["-", "--", ":", "-."]
    unstable_shown = False
    for mi, machine in enumerate(machines):
        for label in dict.fromkeys(r.label for r in rows if r.machine == machine):
            pts = sorted((r.batch_size, r.samples_per_s, r.is_unstable) for r in rows
                         if r.label == label and r.machine == machine)  # fmt: skip
            name = f"{machine}: {label}" if len(machines) > 1 else label
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[mi % len(styles)], label=name)
            stable = [p for p in pts if not p[2]]
            shaky = [p for p in pts if p[2]]
            ax.plot([p[0] for p in stable], [p[1] for p in stable], "o", color=line.get_color())
            if shaky:
                ax.plot([p[0] for p in shaky], [p[1] for p in shaky], "o", markerfacecolor="none", markersize=10,
                        markeredgecolor="grey", linestyle="none",
                        label=None if unstable_shown else "unstable (CoV over target)")  # fmt: skip
                unstable_shown = True
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
    comparisons: Sequence[EquivalenceRow] = (),
    skipped: Sequence[tuple[str, str]] = (),
    bench: Sequence[BenchRow] = (),
    outputs: dict[str, np.ndarray] | None = None,
    reference: str = REFERENCE_LABEL,
    bench_rule: str | None = None,
) -> list[Path]:
    """``report.md`` and a self-contained ``report.html`` (plots inlined), plus the plots as PNG files.

    Sections: Equivalence (table), Not run here, Failures (full reports), Throughput (table + plot).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    #: (title, markdown, image or None)
    sections: list[tuple[str, str, Path | None]] = []
    if comparisons:
        if all(isinstance(c, Comparison) for c in comparisons):
            written += write_check_report(out, comparisons, skipped)  # type: ignore[arg-type]
        equivalence = equivalence_sections(comparisons, skipped)
        image = None
        if outputs and reference in outputs and len(outputs) > 1:
            image = plot_errors(outputs, reference, out / "errors.png")
        sections += [(t, body, image if t == "Equivalence" else None) for t, body in equivalence]
    if bench:
        sections.append(
            ("Throughput", throughput_markdown(bench, bench_rule), plot_throughput(bench, out / "throughput.png"))
        )
    written += [img for _, _, img in sections if img is not None]
    md = ["# trt_equiv report", ""]
    for title, body, img in sections:
        md += [f"## {title}", "", body, ""] + ([f"![{title}]({img.name})", ""] if img else [])
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))
    html_path = out / "report.html"
    html_path.write_text(_html(sections))
    return [md_path, html_path, *written]


def _html(sections: Sequence[tuple[str, str, Path | None]]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>trt_equiv report</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}",
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child{text-align:left}",
        "pre{background:#f6f6f6;padding:.6em;font-size:12px}",
        ".FAIL{background:#fdd}.PASS{background:#dfd}.unstable{color:#777;font-style:italic}",
        "</style></head><body><h1>trt_equiv report</h1>",
    ]
    for title, body, img in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>{_markdown_to_html(body)}")
        if img is not None:
            data = base64.b64encode(img.read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _markdown_to_html(markdown: str) -> str:
    """The Markdown this module writes (tables, ``-`` lists, fenced blocks, paragraphs) as HTML."""
    out: list[str] = []
    table: list[list[str]] = []
    items: list[str] = []
    fence: list[str] | None = None

    def flush() -> None:
        if table:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
            body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in table[1:])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        if fence is not None:
            if line.startswith("```"):
                out.append(f"<pre>{html.escape(chr(10).join(fence))}</pre>")
                fence = None
            else:
                fence.append(line)
            continue
        if line.startswith("```"):
            flush()
            fence = []
        elif line.startswith("|"):
            if not _is_separator(line):
                table.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif line.startswith("- "):
            items.append(line[2:])
        else:
            flush()
            if line.strip():
                out.append(f"<p>{_inline(line)}</p>")
    flush()
    if fence is not None:
        out.append(f"<pre>{html.escape(chr(10).join(fence))}</pre>")
    return "".join(out)


def _is_separator(line: str) -> bool:
    """A Markdown table's header separator, e.g. ``|---|---|`` or ``| :--- | ---: |``."""
    return set(line.replace(" ", "")) <= set("|-:")


def _td(cell: str) -> str:
    css = "unstable" if cell.endswith("†") else cell
    return f"<td class='{html.escape(css)}'>{html.escape(cell)}</td>"


def _inline(text: str) -> str:
    """Escape, then render `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
