"""The ``trt-equiv`` command.

Exit codes (stable; scripts depend on them): 0 all equivalent, 1 an equivalence failure, 2 bad usage or
a missing prerequisite (the message says which).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trt_equiv.backends.base import PRECISIONS
from trt_equiv.errors import MissingRuntimeError, TrtEquivError

if TYPE_CHECKING:
    from trt_equiv.data import Dataset

EXIT_OK, EXIT_NOT_EQUIVALENT, EXIT_USAGE = 0, 1, 2
INT8_FALLBACK_HELP = "auto: keep the fewest Conv/Gemm/MatMul nodes in fp32 that make int8 pass on the calibration set"

PROFILE_HELP = (
    "engine optimization profile (repeatable): MIN,OPT,MAX for every input's batch (default 1,16,32), "
    "NAME:MIN,OPT,MAX for one input's batch, NAME:1x8,16x128,32x512 for one input's full shape range "
    "(batch first; needed for every dynamic dimension other than the batch, e.g. a sequence length)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trt-equiv", description="Prove a TensorFlow model survives conversion to ONNX/TensorRT."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="compare every backend × precision with the SavedModel")
    check.add_argument("--model", help="SavedModel directory (default: the bundled model)")
    check.add_argument(
        "--data",
        help=".npz with one array per model input keyed by input name ('x' for a single input), labels 'y' or "
        "'y:<output>' (default: bundled)",
    )
    check.add_argument("--signature", default="serving_default", help="SavedModel signature (default serving_default)")
    check.add_argument(
        "--onnx",
        action="append",
        metavar="[PRECISION=]FILE",
        help="check this ONNX file against the SavedModel instead of converting one; fp16=FILE / int8=FILE check "
        "your reduced-precision file instead of the recipe's (repeatable)",
    )
    check.add_argument("--engine", help="check this TensorRT engine against the SavedModel instead of building one")
    check.add_argument("--backends", default=None, help="comma list of onnxruntime,ortcuda,tensorrt,cpp (default: all)")
    check.add_argument("--precisions", default=None, help=f"comma list of {','.join(PRECISIONS)}")
    check.add_argument("--batch-sizes", default="32", help="comma list of sizes or 'all' (default: 32)")
    check.add_argument("--calibration", help=".npz calibration set for int8 (required for a user's model)")
    check.add_argument("--calibration-method", default="minmax", choices=("minmax", "entropy", "percentile"))
    check.add_argument("--int8-fallback", default="off", choices=("off", "auto"), help=INT8_FALLBACK_HELP)
    check.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="KEY.BOUND=VALUE",
        help="override a tolerance bound, e.g. fp16.rms_err=0.02, int8.logits.p99_err=0.3, fp16:OUTPUT.rel_l2=0.1, "
        "or fp16.cosine=none to not check it (repeatable)",
    )
    check.add_argument(
        "--output-kind",
        action="append",
        default=[],
        metavar="NAME=KIND",
        help="override the detected kind of an output: probabilities, logits, continuous or exact (repeatable)",
    )
    check.add_argument("--profile", action="append", default=None, metavar="ITEM", help=PROFILE_HELP)
    check.add_argument("--cache-dir", help="cache root (default: $TRT_EQUIV_CACHE_DIR or the per-user cache)")
    check.add_argument("--report", metavar="DIR", help="write equivalence.md/.json (and plots) into DIR")
    check.add_argument(
        "--golden", metavar="FILE.npz", help="reference outputs from `trt-equiv golden` instead of running TensorFlow"
    )
    check.set_defaults(func=cmd_check)

    golden = sub.add_parser("golden", help="run the SavedModel once and save its outputs with provenance")
    golden.add_argument("--model", help="SavedModel directory (default: the bundled model)")
    golden.add_argument("--data", help=".npz data file, inputs by name (default: bundled test set)")
    golden.add_argument("--out", required=True, metavar="GOLDEN.npz", help="golden file to write")
    golden.add_argument("--signature", default="serving_default", help="SavedModel signature (default serving_default)")
    golden.set_defaults(func=cmd_golden)

    doctor = sub.add_parser("doctor", help="what is installed and usable here, and which backends will not run")
    doctor.set_defaults(func=cmd_doctor)

    build = sub.add_parser("build", help="build and cache TensorRT engines for every precision")
    build.add_argument("--model", help="SavedModel directory (default: the bundled model)")
    build.add_argument("--onnx", help="build from this fp32 ONNX file instead of converting the SavedModel")
    build.add_argument("--precisions", default="fp32,fp16,int8", help=f"comma list of {','.join(PRECISIONS)}")
    build.add_argument("--profile", action="append", default=None, metavar="ITEM", help=PROFILE_HELP)
    build.add_argument("--calibration", help=".npz calibration set for int8 (required for a user's model)")
    build.add_argument("--calibration-method", default="minmax", choices=("minmax", "entropy", "percentile"))
    build.add_argument("--int8-fallback", default="off", choices=("off", "auto"), help=INT8_FALLBACK_HELP)
    build.add_argument("--cache-dir", help="cache root (default: $TRT_EQUIV_CACHE_DIR or the per-user cache)")
    build.set_defaults(func=cmd_build)

    bench = sub.add_parser("bench", help="throughput and latency per backend × precision × batch size")
    bench.add_argument("--model", help="SavedModel directory (default: the bundled model)")
    bench.add_argument("--data", help=".npz with one array per input (default: bundled)")
    bench.add_argument("--backends", default="savedmodel,onnxruntime,ortcuda,tflite,tensorrt,cpp", help="comma list")
    bench.add_argument("--precisions", default="fp32,fp16,int8", help=f"comma list of {','.join(PRECISIONS)}")
    bench.add_argument("--batch-sizes", default="1,8,16,32", help="comma list (default 1,8,16,32)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed calls before timing (default 3)")
    bench.add_argument("--rounds", type=int, default=5, help="minimum timed rounds per row (default 5)")
    bench.add_argument(
        "--target-cv",
        type=float,
        default=0.02,
        help="repeat rounds until their coefficient of variation is at most this (default 0.02)",
    )
    bench.add_argument(
        "--max-time",
        type=float,
        default=10.0,
        metavar="S",
        help="time budget per row in seconds; a row still above --target-cv then is unstable (10)",
    )
    bench.add_argument(
        "--check-rate",
        type=float,
        default=0.1,
        help="fraction of timed calls whose outputs are checked against the verified ones (0.1)",
    )
    bench.add_argument(
        "--overhead-batch",
        type=int,
        default=32,
        help="batch size of the harness-overhead measurement against the raw runtime call (32)",
    )
    bench.add_argument("--calibration", help=".npz calibration set for int8 (required for a user's model)")
    bench.add_argument("--cache-dir", help="cache root (default: $TRT_EQUIV_CACHE_DIR or the per-user cache)")
    bench.add_argument("--json", metavar="FILE", help="write the rows as JSON (readable by `trt-equiv report`)")
    bench.add_argument("--report", metavar="DIR", help="write report.md/report.html with plots into DIR")
    bench.set_defaults(func=cmd_bench)

    runner = sub.add_parser("build-runner", help="build the C++ runner (cpp/) with CMake")
    runner.add_argument(
        "--build-dir", help="build directory (default: <cache>/runner/build, where the cpp backend looks)"
    )
    runner.add_argument("--tensorrt-root", help="TensorRT prefix with include/NvInfer.h and lib/libnvinfer")
    runner.add_argument("--cuda-root", help="CUDA toolkit prefix (default: found by CMake)")
    runner.add_argument("--build-type", default="Release", choices=("Release", "Debug", "RelWithDebInfo"))
    runner.add_argument(
        "--require-tensorrt",
        action="store_true",
        help="fail instead of building only the TensorRT-free core when TensorRT is not found",
    )
    runner.set_defaults(func=cmd_build_runner)

    loc = sub.add_parser("locate", help="find the first layer where a candidate ONNX diverges from the reference")
    loc.add_argument("--onnx", help="reference (fp32) ONNX file (default: converted from --model)")
    loc.add_argument("--candidate", help="candidate ONNX file of the same graph (fp16, int8 Q/DQ, a suspect file)")
    loc.add_argument("--model", help="SavedModel directory to build the files from (default: the bundled model)")
    loc.add_argument("--precision", choices=("fp16", "int8"), help="build the candidate with this recipe")
    loc.add_argument("--calibration", help=".npz calibration set for int8 (required for a user's model)")
    loc.add_argument("--data", help=".npz data to run both files on (default: the bundled test set)")
    loc.add_argument("--max-samples", type=int, default=512, help="samples used (default 512)")
    loc.add_argument("--chunk-size", type=int, default=32, help="samples per ONNX Runtime call (default 32)")
    loc.add_argument("--cache-dir", help="cache root (default: $TRT_EQUIV_CACHE_DIR or the per-user cache)")
    loc.add_argument("--report", metavar="DIR", help="write locate.md and locate.png into DIR")
    loc.add_argument("--savedmodel", action="store_true",
                     help="compare the SavedModel (--model) with its fp32 ONNX (--onnx or converted)")  # fmt: skip
    loc.set_defaults(func=cmd_locate)

    report = sub.add_parser("report", help="Markdown + HTML report from benchmark and equivalence JSON")
    report.add_argument(
        "--benchmark-json",
        nargs="+",
        default=[],
        metavar="FILE",
        help="pytest --benchmark-json or bench --json files; several machines' files go side by side",
    )
    report.add_argument("--equivalence-json", metavar="FILE", help="equivalence.json written by check --report")
    report.add_argument("--out", required=True, metavar="DIR", help="output directory")
    report.set_defaults(func=cmd_report)
    return parser


def cmd_check(args: argparse.Namespace) -> int:
    from trt_equiv.check import run_check
    from trt_equiv.compare import TolerancePolicy, parse_output_kinds
    from trt_equiv.pipeline import DEFAULT_CANDIDATES, Pipeline, parse_batch_sizes, parse_list
    from trt_equiv.report import format_table, write_report

    explicit_backends = args.backends is not None
    backends = parse_list(args.backends, DEFAULT_CANDIDATES, "--backends") if explicit_backends else DEFAULT_CANDIDATES
    user_model = args.model is not None
    if args.precisions is not None:
        precisions = parse_list(args.precisions, PRECISIONS, "--precisions")
    elif args.engine:
        precisions = ("fp32",)
    else:
        precisions = ("fp32", "fp16", "int8") if (not user_model or args.calibration) else ("fp32", "fp16")

    if args.engine:
        if len(precisions) != 1:
            raise TrtEquivError(f"--engine: expected the engine's one precision in --precisions, got {precisions}")
        if not explicit_backends:
            backends = ("tensorrt",)
    batch_sizes = parse_batch_sizes(args.batch_sizes)
    policy = TolerancePolicy().with_overrides(args.tolerance)
    output_kinds = parse_output_kinds(args.output_kind)
    pipeline = Pipeline.create(
        args.model, args.data, calibration=args.calibration, cache_dir=args.cache_dir, onnx=args.onnx,
        engine=args.engine, calibration_method=args.calibration_method, signature=args.signature,
        int8_fallback=args.int8_fallback, golden=args.golden, profile=tuple(args.profile or ("1,16,32",)),
    )  # fmt: skip
    if user_model and args.precisions is None and not args.engine and not args.calibration:
        print("not run: int8: needs --calibration FILE.npz for a user's model (never the test data)")
    candidates = [(b, p) for b in backends for p in precisions]
    if args.engine:  # a corrupt, truncated or mismatched engine is refused before anything runs
        pipeline.cached_engine(precisions[0])
    if explicit_backends or args.engine:  # asked for by name: not being able to run it is a usage error
        for backend, precision in candidates:
            reason = Pipeline.unavailable_reason(backend, precision)
            if reason:
                raise MissingRuntimeError(f"{backend}-{precision} cannot run here: {reason}")
    result = run_check(pipeline, candidates, batch_sizes, policy, output_kinds)
    print(format_table(result.comparisons))
    for label, reason in result.skipped:
        print(f"not run: {label}: {reason}")
    for failure in result.failures:
        print()
        print(failure.report())
    if args.report:
        first = next(iter(result.kinds), None)
        whole = {label: next(iter(by_batch.values()))[first] for label, by_batch in result.outputs.items()
                 if first in next(iter(by_batch.values()))}  # fmt: skip
        for path in write_report(args.report, comparisons=result.comparisons, skipped=result.skipped, outputs=whole):
            print(f"wrote {path}")
    n_fail = len(result.failures)
    print()
    print(
        f"{'EQUIVALENT' if result else 'NOT EQUIVALENT'}: {len(result.comparisons) - n_fail} passed, "
        f"{n_fail} failed, {len(result.skipped)} candidates not runnable here"
    )
    return EXIT_OK if result else EXIT_NOT_EQUIVALENT


def cmd_golden(args: argparse.Namespace) -> int:
    from trt_equiv.data import BUNDLED_MODEL, BUNDLED_TEST, load_npz
    from trt_equiv.golden import save_golden

    if args.model is not None and args.data is None:
        raise TrtEquivError("--data: expected a .npz data file for a user's model, got none")
    data_path = Path(args.data) if args.data else BUNDLED_TEST
    meta = save_golden(args.model or BUNDLED_MODEL, load_npz(data_path, labels=False), args.out,
                       signature=args.signature, data_path=data_path)  # fmt: skip
    outputs = ", ".join(f"{o['name']} {o['shape']}" for o in meta["outputs"])
    print(f"wrote {args.out}: {meta['data']['samples']} samples, outputs {outputs}")
    print(f"model sha256 {meta['model']['sha256']}, data sha256 {meta['data']['sha256']}, "
          f"TensorFlow {meta['tensorflow']}")  # fmt: skip
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from trt_equiv.doctor import diagnose

    print(diagnose().format())
    return EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from trt_equiv.pipeline import Pipeline, parse_list
    from trt_equiv.progress import step
    from trt_equiv.trt.build import Profile

    precisions = parse_list(args.precisions, PRECISIONS, "--precisions")
    profile_items = tuple(args.profile or ("1,16,32",))
    profile = Profile.parse(list(profile_items))
    if args.model is not None and "int8" in precisions and not args.calibration:
        raise TrtEquivError("int8: expected --calibration FILE.npz for a user's model, got none")
    pipeline = Pipeline.create(
        args.model, None, calibration=args.calibration, cache_dir=args.cache_dir, onnx=args.onnx,
        calibration_method=args.calibration_method, profile=profile_items,
        require_data=False, int8_fallback=args.int8_fallback,
    )  # fmt: skip
    print(f"{'precision':<12} {'engine bytes':>12}  {'cache':<5}  {'build s':>7}  engine")
    for precision in precisions:
        with step(f"engine {precision} (profile {profile.min}/{profile.opt}/{profile.max})"):
            cached = pipeline.cached_engine(precision)
        status = "hit" if cached.hit else "built"
        build_s = "-" if cached.hit else f"{cached.build_seconds:.1f}"
        print(f"{precision:<12} {cached.size_bytes:>12,}  {status:<5}  {build_s:>7}  {cached.path}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from trt_equiv.bench import (
        StabilityRule,
        artefact_size,
        backend_artefact,
        harness_overhead,
        machine_info,
        measure_backend,
        timed,
    )
    from trt_equiv.pipeline import BACKENDS, Pipeline, parse_batch_sizes, parse_list
    from trt_equiv.progress import note
    from trt_equiv.report import BenchRow, throughput_markdown, write_report

    rule = StabilityRule(target_cv=args.target_cv, max_time_s=args.max_time, min_rounds=args.rounds,
                         warmup=args.warmup, check_rate=args.check_rate)  # fmt: skip
    backends = parse_list(args.backends, BACKENDS, "--backends")
    precisions = parse_list(args.precisions, PRECISIONS, "--precisions")
    batch_sizes = [b for b in parse_batch_sizes(args.batch_sizes) if b is not None]
    pipeline = Pipeline.create(args.model, args.data, calibration=args.calibration, cache_dir=args.cache_dir)
    assert pipeline.data is not None
    print(f"how: {rule.describe()}")
    pairs = [("savedmodel", "fp32")] if "savedmodel" in backends else []
    pairs += [(b, p) for b in backends if b != "savedmodel" for p in precisions]
    rows: list[BenchRow] = []
    for name, precision in pairs:
        reason = Pipeline.unavailable_reason(name, precision)
        if reason:
            print(f"not run: {name}-{precision}: {reason}")
            continue
        backend = pipeline.open_backend(name, precision)
        _, load_s = timed(backend.open)
        with backend:
            for batch in batch_sizes:
                note(f"benchmarking {backend.label} batch {batch}")
                feed = _tiled(pipeline.data.bind(backend.input_specs or ()).inputs, batch)
                s = measure_backend(backend, feed, rule)
                over = harness_overhead(backend, feed) if batch == args.overhead_batch and name != "cpp" else None
                rows.append(BenchRow(
                    name, precision, batch, s.samples_per_s, s.median_s, s.p99_s, s.cv, s.device_median_s, load_s,
                    artefact_size(backend_artefact(backend)), stable=s.stable, rounds=s.rounds,
                    target_cv=s.target_cv, timed=s.timed, outputs_checked=s.outputs_checked, outputs_matched=True,
                    raw_call=over.raw_call if over else None, overhead=over.overhead if over else None,
                    raw_samples_per_s=over.raw_samples_per_s if over else None,
                ))  # fmt: skip
    if not rows:
        raise TrtEquivError("bench: expected at least one backend that can run here, got none")
    print(throughput_markdown(rows, rule.describe()))
    if args.json:
        payload = {
            "machine_info": machine_info(),
            "rule": rule.describe(),
            "benchmarks": [{"name": f"{r.label}-b{r.batch_size}", "extra_info": r.as_json()} for r in rows],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    if args.report:
        for path in write_report(args.report, bench=rows, bench_rule=rule.describe()):
            print(f"wrote {path}")
    return EXIT_OK


def _tiled(inputs: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """The first ``batch`` samples of every input; a small data set is tiled up to the batch size."""
    return {k: x[:batch] if len(x) >= batch else np.resize(x, (batch, *x.shape[1:])) for k, x in inputs.items()}


def _feeds_for(onnx_path: Path, data: Dataset) -> dict[str, np.ndarray]:
    """Model inputs for ``locate``: the data set's arrays bound to the ONNX file's input names."""
    from trt_equiv.convert.onnx import onnx_input_specs

    return data.without_labels().bind(onnx_input_specs(onnx_path)).feeds()


def cmd_locate(args: argparse.Namespace) -> int:
    from trt_equiv.data import BUNDLED_TEST, load_npz
    from trt_equiv.locate import locate, write_locate_report
    from trt_equiv.pipeline import Pipeline

    if args.savedmodel:
        return _locate_savedmodel(args)
    if args.candidate is None and args.precision is None:
        raise TrtEquivError(
            "locate: expected --candidate FILE.onnx, --precision fp16|int8 or --savedmodel, got none of them"
        )
    if args.candidate is not None and args.precision is not None:
        raise TrtEquivError("locate: expected either --candidate or --precision, got both")
    for path, what in ((args.onnx, "--onnx"), (args.candidate, "--candidate")):
        if path is not None and not Path(path).is_file():
            raise TrtEquivError(f"{what}: expected an existing ONNX file, got {path}")
    data_path = args.data or BUNDLED_TEST
    if args.candidate is not None:
        if args.onnx is None:
            raise TrtEquivError("--candidate: expected the reference file with --onnx REF.onnx, got none")
        reference, candidate = Path(args.onnx), Path(args.candidate)
    else:
        if args.precision == "int8" and args.model is not None and not args.calibration:
            raise TrtEquivError("int8: expected --calibration FILE.npz for a user's model, got none")
        pipeline = Pipeline.create(args.model, data_path, calibration=args.calibration, cache_dir=args.cache_dir,
                                   onnx=args.onnx)  # fmt: skip
        reference, candidate = pipeline.onnx("fp32"), pipeline.onnx(args.precision)
    data = load_npz(data_path)
    result = locate(reference, candidate, _feeds_for(reference, data), chunk_size=args.chunk_size,
                    max_samples=args.max_samples)  # fmt: skip
    print(result)
    if args.report:
        for path in write_locate_report(result, args.report):
            print(f"wrote {path}")
    return EXIT_OK


def _locate_savedmodel(args: argparse.Namespace) -> int:
    from trt_equiv.data import BUNDLED_TEST, load_npz
    from trt_equiv.locate import write_locate_report
    from trt_equiv.locate_tf import locate_savedmodel
    from trt_equiv.pipeline import Pipeline

    if args.candidate is not None or args.precision is not None:
        raise TrtEquivError(
            "--savedmodel: compares the SavedModel with its fp32 ONNX; expected no --candidate/--precision"
        )
    data_path = args.data or BUNDLED_TEST
    pipeline = Pipeline.create(args.model, data_path, cache_dir=args.cache_dir, onnx=args.onnx)
    onnx_path = pipeline.onnx("fp32")
    result = locate_savedmodel(pipeline.model_dir, onnx_path, _feeds_for(onnx_path, load_npz(data_path)),
                               chunk_size=args.chunk_size, max_samples=args.max_samples)  # fmt: skip
    print(result)
    for note in result.skipped:
        print(f"not compared: {note}")
    if args.report:
        for path in write_locate_report(result, args.report):
            print(f"wrote {path}")
    return EXIT_OK


def cmd_build_runner(args: argparse.Namespace) -> int:
    from trt_equiv.progress import step
    from trt_equiv.runner_build import build_runner

    with step("building the C++ runner (cmake)"):
        build = build_runner(
            Path(args.build_dir) if args.build_dir else None, tensorrt_root=args.tensorrt_root,
            cuda_root=args.cuda_root, build_type=args.build_type, require_tensorrt=args.require_tensorrt,
        )  # fmt: skip
    print(f"build directory: {build.build_dir}")
    print(f"core tests:      {build.core_tests}")
    print(f"CPU test runner: {build.cpu_runner}")
    if build.tensorrt_built:
        print(f"TensorRT runner: {build.tensorrt_runner} (TensorRT {build.tensorrt_version})")
    else:
        print(f"TensorRT runner: not built — {build.tensorrt_reason}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from trt_equiv.report import BenchRow, bench_rows_from_json, load_equivalence_json, write_report

    if not args.benchmark_json and not args.equivalence_json:
        raise TrtEquivError("report: expected --benchmark-json FILE... and/or --equivalence-json FILE, got neither")
    rows: list[BenchRow] = []
    for name in args.benchmark_json:
        path = Path(name)
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TrtEquivError(f"--benchmark-json: expected a readable JSON file, got {path} ({exc})") from exc
        found = bench_rows_from_json(payload, f"--benchmark-json {path}")
        if not found:
            raise TrtEquivError(f"--benchmark-json: expected rows with backend/batch_size, got none in {path}")
        rows += found
    comparisons, skipped = load_equivalence_json(args.equivalence_json) if args.equivalence_json else ([], [])
    for written in write_report(args.out, bench=rows, comparisons=comparisons, skipped=skipped):
        print(f"wrote {written}")
    return EXIT_OK


#: lines TensorFlow's C++ side writes to stderr on import whatever TF_CPP_MIN_LOG_LEVEL says (TF 2.21)
TF_STARTUP_NOISE = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (when installed) with its start-up lines dropped; anything else it prints passes.

    They are written to file descriptor 2 by C++ before absl's logging is initialised, so neither
    TF_CPP_MIN_LOG_LEVEL nor Python's logging can silence them; stderr is captured around the import.
    """
    import tempfile

    from trt_equiv.runtime import is_available, require

    if "tensorflow" in sys.modules or not is_available("tensorflow"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            require("tensorflow")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if not any(noise in line for noise in TF_STARTUP_NOISE):
                    print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything imports TensorFlow: its C++ start-up lines (oneDNN notice, absl) would bury the output.
    # A user's own setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    # with --golden the point is not to load TensorFlow at all (its CUDA libraries may clash with TensorRT's)
    if args.command in ("check", "bench", "build", "golden", "locate") and not getattr(args, "golden", None):
        import_tensorflow_quietly()
    try:
        return int(args.func(args))
    except TrtEquivError as exc:
        print(f"trt-equiv: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, KeyError, ValueError) as exc:  # a file that cannot be written, a malformed input file
        print(f"trt-equiv: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # never let a crash exit 1, which scripts read as "not equivalent"
        import traceback

        traceback.print_exc()
        print(f"trt-equiv: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
