"""Samples/s of one fp32 ONNX file on ONNX Runtime CUDA vs CPU, per batch size (run on a GPU machine).

Usage: python tools/ortcuda_bench.py MODEL.onnx DATA.npz [--batch-sizes 1,8,32,128] [--json OUT.json]
Uses trt_equiv's backends and ``bench.measure`` so the numbers are the ones `trt-equiv bench` would print;
also checks the CUDA outputs against the CPU ones (max |diff|) so a fast but wrong provider shows.
"""

from __future__ import annotations

import argparse
import json
import platform
from functools import partial

import numpy as np

from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeCudaBackend
from trt_equiv.bench import measure
from trt_equiv.data import load_npz
from trt_equiv.runtime import cuda_devices, cuda_versions, onnxruntime_cuda_unavailable_reason, require


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("data")
    ap.add_argument("--batch-sizes", default="1,8,32,128")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    ort = require("onnxruntime")
    info = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers(),
            "gpus": [d[0] for d in cuda_devices()], "cuda": cuda_versions(), "cpu": platform.processor(),
            "ortcuda_unavailable": onnxruntime_cuda_unavailable_reason()}  # fmt: skip
    print(json.dumps(info))
    data = load_npz(args.data)
    rows = []
    backends = [OnnxRuntimeBackend(args.onnx, providers=["CPUExecutionProvider"])]
    if info["ortcuda_unavailable"] is None:
        backends.append(OnnxRuntimeCudaBackend(args.onnx))
    outputs = {}
    for backend in backends:
        with backend.open() as b:
            x = data.bind(b.input_specs).feeds()
            outputs[b.label] = b.infer(x)
            for batch in (int(s) for s in args.batch_sizes.split(",")):
                feed = {k: np.resize(v, (batch, *v.shape[1:])) for k, v in x.items()}
                s = measure(partial(b.infer, feed), batch, warmup=args.warmup, rounds=args.rounds)
                row = {"backend": b.name, "providers": b.providers, "batch_size": batch,
                       "samples_per_s": s.samples_per_s, "median_ms": s.median_s * 1e3, "p99_ms": s.p99_s * 1e3,
                       "cv": s.cv}  # fmt: skip
                rows.append(row)
                print(json.dumps(row))
    if len(outputs) == 2:
        cpu, gpu = outputs.values()
        for name in cpu:
            print(f"output {name}: max |cuda - cpu| = {float(np.max(np.abs(cpu[name] - gpu[name]))):.3g}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"info": info, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
