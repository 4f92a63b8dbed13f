"""The ``trt-equiv`` command.

Exit codes (stable; scripts depend on them): 0 all equivalent, 1 an equivalence failure, 2 bad usage or
a missing prerequisite (the message says which).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from trt_equiv.backends.base import PRECISIONS
from trt_equiv.errors import MissingRuntimeError, TrtEquivError

EXIT_OK, EXIT_NOT_EQUIVALENT, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trt-equiv", description="Prove a TensorFlow model survives conversion to ONNX/TensorRT."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="compare every backend × precision with the SavedModel")
    check.add_argument("--model", help="SavedModel directory (default: the bundled model)")
    check.add_argument("--data", help=".npz with x float32 (N,H,W,C) and optional y labels (default: bundled)")
    check.add_argument("--onnx", help="check this ONNX file against the SavedModel instead of converting one")
    check.add_argument("--engine", help="check this TensorRT engine against the SavedModel instead of building one")
    check.add_argument("--backends", default=None, help="comma list of onnxruntime,ortcuda,tensorrt,cpp (default: all)")
    check.add_argument("--precisions", default=None, help=f"comma list of {','.join(PRECISIONS)}")
    check.add_argument("--batch-sizes", default="32", help="comma list of sizes or 'all' (default: 32)")
    check.add_argument("--calibration", help=".npz calibration set for int8 (required for a user's model)")
    check.add_argument("--calibration-method", default="minmax", choices=("minmax", "entropy", "percentile"))
    check.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="KEY.BOUND=VALUE",
        help="override a tolerance bound, e.g. fp16.max_abs=0.05 (repeatable)",
    )
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
    build.add_argument("--profile", default="1,16,32", metavar="MIN,OPT,MAX", help="batch profile (default 1,16,32)")
    build.add_argument("--calibration", help=".npz calibration set for int8 (required for a user's model)")
    build.add_argument("--calibration-method", default="minmax", choices=("minmax", "entropy", "percentile"))
    build.add_argument("--cache-dir", help="cache root (default: $TRT_EQUIV_CACHE_DIR or the per-user cache)")
    build.set_defaults(func=cmd_build)

    bench = sub.add_parser("bench", help="throughput and latency per backend × precision × batch size")
    bench.add_argument("--model", help="SavedModel directory (default: the bundled model)")
    bench.add_argument("--data", help=".npz with x float32 (N,H,W,C) (default: bundled)")
    bench.add_argument("--backends", default="savedmodel,onnxruntime,ortcuda,tensorrt,cpp", help="comma list")
    bench.add_argument("--precisions", default="fp32,fp16,int8", help=f"comma list of {','.join(PRECISIONS)}")
    bench.add_argument("--batch-sizes", default="1,8,16,32", help="comma list (default 1,8,16,32)")
    bench.add_argument("--warmup", type=int, default=3, help="untimed calls before timing (default 3)")
    bench.add_argument("--rounds", type=int, default=20, help="timed calls per batch size (default 20)")
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

    report = sub.add_parser("report", help="Markdown + HTML report from benchmark and equivalence JSON")
    report.add_argument("--benchmark-json", required=True, help="pytest --benchmark-json file or bench --json")
    report.add_argument("--out", required=True, metavar="DIR", help="output directory")
    report.set_defaults(func=cmd_report)
    return parser


def cmd_check(args: argparse.Namespace) -> int:
    from trt_equiv.check import run_check
    from trt_equiv.compare import TolerancePolicy
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
    golden = {"golden": args.golden} if args.golden else {}  # the lead's Pipeline takes it; older ones do not
    pipeline = Pipeline.create(
        args.model, args.data, calibration=args.calibration, cache_dir=args.cache_dir, onnx=args.onnx,
        engine=args.engine, calibration_method=args.calibration_method, **golden,
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
    result = run_check(pipeline, candidates, batch_sizes, policy)
    print(format_table(result.comparisons))
    for label, reason in result.skipped:
        print(f"not run: {label}: {reason}")
    for failure in result.failures:
        print()
        print(failure.report())
    if args.report:
        whole = {label: next(iter(by_batch.values())) for label, by_batch in result.outputs.items()}
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
    profile = Profile.parse(args.profile)
    if args.model is not None and "int8" in precisions and not args.calibration:
        raise TrtEquivError("int8: expected --calibration FILE.npz for a user's model, got none")
    pipeline = Pipeline.create(
        args.model, None, calibration=args.calibration, cache_dir=args.cache_dir, onnx=args.onnx,
        calibration_method=args.calibration_method, profile=(profile.min, profile.opt, profile.max),
        require_data=False,
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

    from trt_equiv.bench import artefact_size, backend_artefact, measure, timed
    from trt_equiv.pipeline import BACKENDS, Pipeline, parse_batch_sizes, parse_list
    from trt_equiv.progress import note
    from trt_equiv.report import BenchRow, throughput_markdown, write_report

    if args.rounds < 1 or args.warmup < 0:
        raise TrtEquivError(f"--rounds/--warmup: expected rounds >= 1 and warmup >= 0, got {args.rounds}/{args.warmup}")
    backends = parse_list(args.backends, BACKENDS, "--backends")
    precisions = parse_list(args.precisions, PRECISIONS, "--precisions")
    batch_sizes = [b for b in parse_batch_sizes(args.batch_sizes) if b is not None]
    pipeline = Pipeline.create(args.model, args.data, calibration=args.calibration, cache_dir=args.cache_dir)
    assert pipeline.data is not None
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
                x = pipeline.data.x[:batch]
                if len(x) < batch:  # small data set: tile it up to the batch size
                    x = np.resize(pipeline.data.x, (batch, *pipeline.data.x.shape[1:]))
                s = measure(partial(backend.infer, x), batch, warmup=args.warmup, rounds=args.rounds,
                            device_time=partial(getattr, backend, "last_device_time_s"))  # fmt: skip
                rows.append(BenchRow(name, precision, batch, s.samples_per_s, s.median_s, s.p99_s, s.cv,
                                     s.device_median_s, load_s, artefact_size(backend_artefact(backend))))  # fmt: skip
    if not rows:
        raise TrtEquivError("bench: expected at least one backend that can run here, got none")
    print(throughput_markdown(rows))
    if args.json:
        payload = {"benchmarks": [{"extra_info": vars(r) | {"median_s": r.median_s}} for r in rows]}
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    if args.report:
        for path in write_report(args.report, bench=rows):
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

    from trt_equiv.report import bench_rows_from_json, write_report

    path = Path(args.benchmark_json)
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrtEquivError(f"--benchmark-json: expected a readable JSON file, got {path} ({exc})") from exc
    rows = bench_rows_from_json(payload)
    if not rows:
        raise TrtEquivError(f"--benchmark-json: expected benchmark rows with backend/batch_size, got none in {path}")
    for written in write_report(args.out, bench=rows):
        print(f"wrote {written}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
