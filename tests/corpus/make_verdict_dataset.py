"""Run every corpus case once and store its raw outputs, so verdict rules can be evaluated offline in seconds.

    python -m tests.corpus.make_verdict_dataset --out /work/verdicts/public
    python -m tests.corpus.make_verdict_dataset --corpus /work/heldout --out /work/heldout/verdicts

A case is (model, candidate, fault or "none", expected verdict). Candidates per model: the correct fp32,
fp16 and int8 (minmax, entropy, percentile) ONNX files (expected "pass"); every fp32 fault as fp32 and
through the fp16 and int8-minmax recipes made from the faulty file, plus the fp16 and int8 faults
(expected "fail"). int8 is always calibrated on the calibration split, never on the test split.

Output: one compressed ``<model>__<candidate>__<fault>.npz`` per case and ``index.json``. Keys per npz:
``reference`` (SavedModel on the test split), ``candidate`` (ONNX Runtime CPU), ``upstream`` (ONNX Runtime
on the fp32 file the candidate was made from: the chain's onnxruntime-fp32 stage; the candidate itself for
fp32 candidates), ``ort_fp32`` (the correct fp32 ONNX), ``y`` (labels / targets), and 0-d strings
``model``, ``candidate_name``, ``fault``, ``expected``, ``task``. The test inputs are in the corpus's
``<model>/test.npz`` (not copied per case).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.corpus.faults import FP32_FAULTS, Fault, fp16_layer_scaled, fp32_fault, int8_wrong_range
from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend
from trt_equiv.backends.savedmodel import SavedModelBackend
from trt_equiv.compare import compute_metrics
from trt_equiv.convert.onnx import savedmodel_to_onnx
from trt_equiv.convert.precision import fp16_onnx, int8_qdq_onnx
from trt_equiv.data import Dataset

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "trt_equiv_verdicts"
CLASSIFIERS = ("classification", "logits")


def load_model_data(model_dir: Path) -> tuple[np.ndarray, np.ndarray, Dataset, dict[str, Any]]:
    """Test inputs, test labels/targets, the calibration split and info.json of one corpus model."""
    with np.load(model_dir / "test.npz", allow_pickle=False) as npz:
        x, y = npz["x"], npz["y"]
    with np.load(model_dir / "calibration.npz", allow_pickle=False) as npz:
        calibration = Dataset.single(npz["x"], None, str(model_dir / "calibration.npz"))
    info = json.loads((model_dir / "info.json").read_text())
    return x, y, calibration, info


def run_onnx(path: Path, x: np.ndarray, precision: str) -> np.ndarray:
    """Outputs of an ONNX file on ONNX Runtime CPU."""
    with OnnxRuntimeBackend(path, precision=precision, providers=["CPUExecutionProvider"]) as backend:
        return backend.infer(x)


def plain_metrics(task: str, ref: np.ndarray, cand: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """max abs diff, rel L2, top-1 agreement and the task-quality delta (accuracy, or MAE for continuous)."""
    labels = y if task in CLASSIFIERS else None
    m = compute_metrics(ref, cand, labels)
    out: dict[str, float | None] = {
        "max_abs": m.max_abs, "rel_l2": m.rel_l2,
        "top1_agreement": m.top1_agreement if task in (*CLASSIFIERS, "multilabel") else None,
        "accuracy_delta": m.accuracy_delta,
    }  # fmt: skip
    if task in ("regression", "featuremap"):
        target = y.reshape(len(y), -1).astype(np.float64)
        mae_ref = float(np.mean(np.abs(ref.reshape(len(ref), -1) - target)))
        mae_cand = float(np.mean(np.abs(cand.reshape(len(cand), -1) - target)))
        out["mae_delta"] = mae_cand - mae_ref
    if task == "multilabel":
        out["bit_accuracy_delta"] = float(np.mean((cand > 0.5) == y) - np.mean((ref > 0.5) == y))
    return out


def model_cases(
    model_dir: Path, work: Path, cache_dir: Path | None, skip_entropy: bool = False
) -> list[tuple[str, str, Fault | None, Path, Path, str]]:
    """(candidate name, precision, fault, candidate file, upstream fp32 file, expected) for one model."""
    x, _, calibration, _ = load_model_data(model_dir)
    fp32 = savedmodel_to_onnx(model_dir / "savedmodel", cache_dir=cache_dir)
    cases: list[tuple[str, str, Fault | None, Path, Path, str]] = [
        ("fp32", "fp32", None, fp32, fp32, "pass"),
        ("fp16", "fp16", None, fp16_onnx(fp32, cache_dir=cache_dir).path, fp32, "pass"),
    ]
    methods = ("minmax",) if skip_entropy else ("minmax", "entropy", "percentile")
    for method in methods:
        int8 = int8_qdq_onnx(fp32, calibration, method=method, cache_dir=cache_dir).path
        cases.append((f"int8-{method}", "int8", None, int8, fp32, "pass"))
    for name in FP32_FAULTS:
        fault = fp32_fault(
            name, fp32, work / f"{name}.onnx", x_test=x, seed2_model=model_dir / "savedmodel_seed2", cache_dir=cache_dir
        )
        cases.append(("fp32", "fp32", fault, fault.path, fault.path, "fail"))
        cases.append(("fp16", "fp16", fault, fp16_onnx(fault.path, cache_dir=cache_dir).path, fault.path, "fail"))
        int8 = int8_qdq_onnx(fault.path, calibration, method="minmax", cache_dir=cache_dir).path
        cases.append(("int8-minmax", "int8", fault, int8, fault.path, "fail"))
    fp16 = fp16_onnx(fp32, cache_dir=cache_dir).path
    scaled = fp16_layer_scaled(fp16, work / "fp16_layer_scaled.onnx")
    cases.append(("fp16", "fp16", scaled, scaled.path, fp32, "fail"))
    wrong = int8_wrong_range(fp32, calibration, cache_dir=cache_dir)
    cases.append(("int8-minmax", "int8", wrong, wrong.path, fp32, "fail"))
    return cases


def run_model(model_dir: Path, out: Path, cache_dir: Path | None, skip_entropy: bool) -> list[dict[str, Any]]:
    """Write every case of one model into ``out``; returns their index entries."""
    name = model_dir.name
    x, y, _, info = load_model_data(model_dir)
    task = info["task"]
    with SavedModelBackend(model_dir / "savedmodel") as sm:
        reference = sm.infer(x)
    work = out / "_work" / name
    work.mkdir(parents=True, exist_ok=True)
    outputs: dict[Path, np.ndarray] = {}

    def outputs_of(path: Path, precision: str) -> np.ndarray:
        if path not in outputs:
            outputs[path] = run_onnx(path, x, precision)
        return outputs[path]

    entries = []
    cases = model_cases(model_dir, work, cache_dir, skip_entropy)
    ort_fp32 = outputs_of(cases[0][3], "fp32")
    for candidate, precision, fault, path, upstream_path, expected in cases:
        fault_name = fault.name if fault else "none"
        start = time.perf_counter()
        cand = outputs_of(path, precision)
        upstream = outputs_of(upstream_path, "fp32")
        file = f"{name}__{candidate}__{fault_name}.npz"
        np.savez_compressed(
            out / file, reference=reference, candidate=cand, upstream=upstream, ort_fp32=ort_fp32, y=y,
            model=np.array(name), candidate_name=np.array(candidate), fault=np.array(fault_name),
            expected=np.array(expected), task=np.array(task),
        )  # fmt: skip
        entry = {
            "file": file, "model": name, "task": task, "output_kind_hint": info["output_kind_hint"],
            "candidate": candidate, "precision": precision, "fault": fault_name,
            "fault_stage": fault.stage if fault else None, "fault_details": fault.details if fault else None,
            "expected": expected,
            # the fault is in the fp32 file this fp16/int8 file was made from: the chain's fp32 link shows it
            "upstream_is_faulty": bool(fault and fault.stage == "fp32" and precision != "fp32"),
            "seconds": round(time.perf_counter() - start, 2),
            "vs_reference": plain_metrics(task, reference, cand, y),
            "vs_upstream": plain_metrics(task, upstream, cand, y) if precision != "fp32" else None,
        }  # fmt: skip
        entries.append(entry)
        print(f"{file}: {json.dumps(entry['vs_reference'])}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return entries


def annotate(out: Path, index: dict[str, Any]) -> None:
    """Add ``vs_correct_same_recipe`` to every faulty case: its distance from the correct conversion made by
    the same recipe. 0 means the recipe erased the fault (e.g. a 0.08 bias shift on a bias of 1000 in fp16,
    whose spacing there is 0.5): no rule can see that fault in that file."""
    for case in index["cases"]:
        if case["fault"] == "none":
            continue
        correct = out / f"{case['model']}__{case['candidate']}__none.npz"
        if not correct.is_file():
            continue
        with np.load(out / case["file"], allow_pickle=False) as a, np.load(correct, allow_pickle=False) as b:
            cand, good = a["candidate"].astype(np.float64), b["candidate"].astype(np.float64)
        diff = float(np.abs(cand - good).max())
        norm = float(np.linalg.norm(good))
        case["vs_correct_same_recipe"] = {
            "max_abs": diff, "rel_l2": float(np.linalg.norm(cand - good)) / norm if norm else None,
        }  # fmt: skip


def table(entries: list[dict[str, Any]]) -> str:
    """A compact Markdown table of the plain metrics against the SavedModel."""
    rows = [
        "| model | candidate | fault | expected | max_abs | rel_l2 | top1 | Δacc / ΔMAE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        m = e["vs_reference"]
        top1 = "—" if m["top1_agreement"] is None else f"{m['top1_agreement']:.3f}"
        delta = m.get("mae_delta", m["accuracy_delta"])
        delta_s = "—" if delta is None else f"{delta:+.4f}"
        rows.append(
            f"| {e['model']} | {e['candidate']} | {e['fault']} | {e['expected']} | {m['max_abs']:.3g} | "
            f"{m['rel_l2']:.3g} | {top1} | {delta_s} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="a corpus made by make_corpus.py")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--only", default="", help="comma-separated model names (default: every model)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--minmax-only", action="store_true", help="skip the entropy/percentile correct cases")
    parser.add_argument("--annotate-only", action="store_true", help="only add vs_correct_same_recipe to index.json")
    args = parser.parse_args(argv)
    if args.annotate_only:
        index_path = args.out / "index.json"
        index = json.loads(index_path.read_text())
        annotate(args.out, index)
        index_path.write_text(json.dumps(index, indent=1) + "\n")
        return 0
    models = sorted(p.parent for p in args.corpus.glob("*/info.json"))
    if args.only:
        wanted = set(args.only.split(","))
        models = [m for m in models if m.name in wanted]
    if not models:
        print(f"no models in {args.corpus} (expected <name>/info.json)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "index.json"
    for model_dir in models:
        entries = run_model(model_dir, args.out, args.cache_dir, args.minmax_only)
        # read just before writing: runs for other models may have added theirs meanwhile
        index = json.loads(index_path.read_text()) if index_path.exists() else {"cases": []}
        index["cases"] = [c for c in index["cases"] if c["model"] != model_dir.name] + entries
        index["corpus"] = str(args.corpus.resolve())
        index["keys"] = ["reference", "candidate", "upstream", "ort_fp32", "y",
                         "model", "candidate_name", "fault", "expected", "task"]  # fmt: skip
        index.setdefault("models", {})[model_dir.name] = json.loads((model_dir / "info.json").read_text())
        annotate(args.out, index)
        tmp = index_path.with_name(f"index.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(index, indent=1) + "\n")
        tmp.replace(index_path)
        (args.out / "table.md").write_text(table(index["cases"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
