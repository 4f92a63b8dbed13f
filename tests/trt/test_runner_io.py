"""The Python TensorRT runner's pure decisions for named multi-input/multi-output engines, and issue 12's
TensorRT-path hardening items (1-7), checked against the real modules where they can run here.

Real modules used: TensorRT for RTX (``tensorrt_rtx_bindings``: its ``nptype``, ``DataType`` and
``TensorFormat``), the TensorRT 11.4 lean runtime (``tensorrt_lean_bindings``: the segfault of item 4) and
cuda-python (the probe on this GPU-less machine). Where nothing real can run here (a driver older than
cuda-python, pycuda, TensorRT 11's split ``tensorrt_bindings`` wheel, a context whose profile switch fails, a
calibrating TensorRT 10 build) a test double stands in, and its docstring says so.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from trt_equiv import runtime
from trt_equiv.backends.tensorrt import (
    check_in_profile,
    discover_io,
    input_specs_of,
    output_shape,
    select_profile,
    split_io,
    to_engine_dtype,
)
from trt_equiv.errors import EngineError, InputValidationError


def _real_module(name: str) -> ModuleType:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed (pip install 'trt-equiv[trt-rtx,trt-lean]')")
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def rtx() -> ModuleType:
    return _real_module("tensorrt_rtx_bindings")


class Engine:
    """The name-based I/O surface of ICudaEngine: tensors name -> (mode, TensorRT dtype, shape, format)."""

    num_optimization_profiles = 1

    def __init__(self, trt: Any, tensors: dict[str, tuple[str, Any, tuple[int, ...]]], fmt: Any = None) -> None:
        self.trt, self.tensors, self.num_io_tensors = trt, tensors, len(tensors)
        self.fmt = fmt if fmt is not None else trt.TensorFormat.LINEAR
        self.profiles: dict[str, list[tuple[int, ...]]] = {}

    def get_tensor_name(self, i: int) -> str:
        return list(self.tensors)[i]

    def get_tensor_mode(self, name: str) -> Any:
        return self.trt.TensorIOMode.INPUT if self.tensors[name][0] == "in" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return self.tensors[name][1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name][2]

    def get_tensor_format(self, name: str) -> Any:
        return self.fmt

    def get_tensor_profile_shape(self, name: str, index: int) -> list[tuple[int, ...]]:
        return self.profiles[name]


def token_engine(trt: Any, **kw: Any) -> Engine:
    """ids int32 (batch, seq) + mask bool (batch, seq) -> logits float (batch, 2) and emb half (batch, seq, 4)."""
    dt = trt.DataType
    e = Engine(
        trt,
        {
            "ids": ("in", dt.INT32, (-1, -1)),
            "mask": ("in", dt.BOOL, (-1, -1)),
            "logits": ("out", dt.FLOAT, (-1, 2)),
            "emb": ("out", dt.HALF, (-1, -1, 4)),
        },
        **kw,
    )
    e.profiles = {n: [(1, 8), (16, 32), (32, 64)] for n in ("ids", "mask")}
    return e


def test_named_inputs_get_specs_with_dynamic_dims_and_engine_dtypes(rtx: ModuleType) -> None:
    inputs, outputs = split_io(discover_io(token_engine(rtx), rtx, where="tok"), "tok")
    assert [(s.name, s.dtype) for s in inputs] == [("ids", np.int32), ("mask", np.bool_)]
    assert [(s.name, s.dtype) for s in outputs] == [("logits", np.float32), ("emb", np.float16)]
    ids, mask = input_specs_of(inputs)
    assert ids.shape == (None,) and ids.dtype is None  # int32 engine input: int32 or range-checked int64 data
    assert mask.shape == (None,) and mask.dtype == np.bool_
    check_in_profile(inputs[0], (4, 64), "tok")
    with pytest.raises(InputValidationError, match=r"'ids' shape \(4, 65\) is outside the engine profile"):
        check_in_profile(inputs[0], (4, 65), "tok")


def test_int64_data_for_an_int32_engine_input_is_converted_only_when_it_fits() -> None:
    i32 = np.dtype(np.int32)
    ids = to_engine_dtype("ids", np.array([[1, 2**31 - 1]], dtype=np.int64), i32, "w")
    assert ids.dtype == np.int32 and ids.tolist() == [[1, 2**31 - 1]]
    with pytest.raises(InputValidationError, match="'ids' is int64 with values 0..2147483648, outside the int32"):
        to_engine_dtype("ids", np.array([[0, 2**31]], dtype=np.int64), i32, "w")
    with pytest.raises(InputValidationError, match="engine tensor is int32, got bool"):
        to_engine_dtype("m", np.ones((1, 2), dtype=np.bool_), i32, "w")
    assert to_engine_dtype("x", np.ones((1, 2), np.float32), np.dtype(np.float16), "w").dtype == np.float16


@pytest.mark.parametrize("type_name", ["BF16", "FP8", "INT4", "FP4"])
def test_item6_types_without_numpy_equivalent_are_engine_errors(rtx: ModuleType, type_name: str) -> None:
    """Item 6: the real ``nptype`` raises TypeError for these; the runner turns it into an EngineError."""
    dtype = getattr(rtx.DataType, type_name, None)
    if dtype is None:
        pytest.skip(f"{rtx.__name__} has no DataType.{type_name}")
    engine = Engine(rtx, {"x": ("in", rtx.DataType.FLOAT, (-1, 3)), "y": ("out", dtype, (-1, 3))})
    engine.profiles = {"x": [(1, 3), (1, 3), (4, 3)]}
    with pytest.raises(EngineError, match=rf"e.engine: tensor 'y' has TensorRT type {type_name}, which has no numpy"):
        discover_io(engine, rtx, where="e.engine")


def test_item6_data_dependent_output_shapes_are_engine_errors_naming_the_tensor() -> None:
    context = SimpleNamespace(get_tensor_shape=lambda name: (4, -1))
    with pytest.raises(EngineError, match=r"output 'boxes' has shape \(4, -1\): a data-dependent size"):
        output_shape(context, "boxes", "e")
    assert output_shape(SimpleNamespace(get_tensor_shape=lambda name: [4, 2]), "y", "e") == (4, 2)


def test_item7_vectorized_io_formats_are_refused(rtx: ModuleType) -> None:
    """Item 7: a CHW4/HWC8 I/O tensor would be read as garbage; the real TensorFormat enum is used."""
    engine = token_engine(rtx, fmt=rtx.TensorFormat.HWC8)
    with pytest.raises(EngineError, match="tensor 'ids' uses the vectorized format HWC8"):
        discover_io(engine, rtx, where="e")


def test_item5_a_failing_profile_switch_is_a_clean_engine_error() -> None:
    """Item 5, by a double (a real context needs a GPU): the binding raises RuntimeError, never returns False."""

    def raising(index: int, stream: int) -> bool:
        raise RuntimeError("setOptimizationProfileAsync: profile index out of range")

    with pytest.raises(EngineError, match="could not select optimization profile 3: setOptimizationProfileAsync"):
        select_profile(SimpleNamespace(set_optimization_profile_async=raising), 3, 0, "e")
    select_profile(SimpleNamespace(set_optimization_profile_async=lambda i, s: True), 1, 0, "e")


def test_item4_no_deserialize_after_a_failed_cuda_init_with_the_real_lean_runtime(tmp_path: Path) -> None:
    """Item 4 against the real TensorRT 11.4 lean runtime: without a usable CUDA its ``Runtime`` still returns an
    object and ``deserialize_cuda_engine`` segfaults. Run in a child process so a crash is seen, not suffered."""
    _real_module("tensorrt_lean_bindings")
    if runtime.cuda_device() is not None:
        pytest.skip("a CUDA GPU is usable here: CUDA initialises, there is no failed init to guard against")
    script = textwrap.dedent(
        """
        import tensorrt_lean_bindings as trt
        from trt_equiv.errors import EngineError
        from trt_equiv.trt.common import deserialize_engine
        try:
            deserialize_engine(trt, b"not an engine" * 64, where="x.engine")
        except EngineError as exc:
            print("ENGINE_ERROR", exc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-2000:]}"
    assert "ENGINE_ERROR x.engine: tensorrt_lean_bindings 11.4" in proc.stdout
    assert "cannot deserialize an engine here" in proc.stdout


def test_item7_the_probe_finds_the_split_tensorrt_bindings_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 7, by a double: TensorRT 11's split wheel (``tensorrt_bindings``) is not installed here, so a stand-in
    package of that name is put on the path; the real lean wheel shows the same naming (``*_bindings``)."""
    if importlib.util.find_spec("tensorrt_lean_bindings") is not None:
        assert runtime.tensorrt_module("tensorrt_lean_bindings").__name__ == "tensorrt_lean_bindings"
    pkg = tmp_path / "tensorrt_bindings"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("__version__ = '11.0.0'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(runtime, "is_available", lambda m: m == "tensorrt_bindings")
    try:
        module = runtime.tensorrt_module()
        assert module.__name__ == "tensorrt_bindings" and module.__version__ == "11.0.0"
    finally:  # the stand-in must not be found by later tests through sys.modules
        sys.modules.pop("tensorrt_bindings", None)


def test_item1_the_probe_reports_no_driver_as_such_with_the_real_cuda_python() -> None:
    """Item 1 with the real cuda-python on this GPU-less machine: driver version 0 means no driver, not a mismatch."""
    if importlib.util.find_spec("cuda.bindings") is None:
        pytest.skip("cuda-python is not installed")
    if runtime.cuda_device() is not None:
        pytest.skip("a CUDA GPU is usable here")
    reason = runtime.cuda_unavailable_reason()
    assert reason is not None and "no NVIDIA driver found" in reason and "mismatch" not in reason


def fake_cudart(driver: int, runtime_version: int) -> Any:
    """cuda-python's runtime API as it answers on a driver older than its CUDA (cudaErrorInsufficientDriver)."""
    code = type("Err", (), {"__int__": lambda self: 35, "name": "cudaErrorInsufficientDriver"})()
    ok = type("Ok", (), {"__int__": lambda self: 0})()
    return SimpleNamespace(
        cudaGetDeviceCount=lambda: (code, None),
        cudaDriverGetVersion=lambda: (ok, driver),
        cudaRuntimeGetVersion=lambda: (ok, runtime_version),
    )


def test_item1_a_driver_older_than_cuda_python_is_reported_as_a_mismatch_with_the_fix() -> None:
    """Item 1, by a double: no host here has a driver older than its cuda-python (a 12.4 driver under cuda-python
    13 is what TensorRT 10-cu12 machines hit)."""
    device, reason = runtime._probe_cudart(fake_cudart(12040, 13000))
    assert device is None
    assert "driver/cuda-python mismatch" in reason and "CUDA up to 12.4" in reason and "CUDA 13.0" in reason
    assert "trt-equiv[cuda12]" in reason and "driver >= 580" in reason


def test_item2_the_probe_accepts_pycuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 2, by a double: pycuda is not installed here (it compiles against a CUDA toolkit)."""

    class Device:
        @staticmethod
        def count() -> int:
            return 1

        def __init__(self, index: int) -> None:
            assert index == 0

        def name(self) -> str:
            return "NVIDIA RTX 4090"

        def compute_capability(self) -> tuple[int, int]:
            return (8, 9)

    drv = SimpleNamespace(init=lambda: None, Device=Device)
    monkeypatch.setattr(runtime, "is_available", lambda m: m == "pycuda")
    monkeypatch.setattr(runtime.importlib, "import_module", lambda name: drv)
    runtime._probe_cuda.cache_clear()
    try:
        assert runtime._probe_cuda() == (("NVIDIA RTX 4090", (8, 9)), "")
    finally:
        runtime._probe_cuda.cache_clear()


def test_item1_the_cuda_extras_pin_cuda_python_per_driver() -> None:
    """The `cuda` extra must never pull cuda-python 13 (driver >= 580) by default, nor 12.6.0 (no cuda.bindings)."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert extras["cuda12"] == ["cuda-python>=12.6.1,<13"] and extras["cuda13"] == ["cuda-python>=13,<14"]
    assert extras["cuda"] == ["trt-equiv[cuda12]"]


def test_item3_a_get_batch_exception_is_kept_and_re_raised_after_the_build() -> None:
    """Item 3, by a double: calibrators exist only in TensorRT 8.6/10 (absent from TensorRT for RTX and 11), and a
    calibrating build needs a GPU. The stand-in ``build`` swallows the exception as TensorRT's binding does."""
    from trt_equiv.trt.build import Calibration, _entropy_calibrator, raise_calibration_error

    class Buffer:
        ptr = 1234

        def __init__(self, nbytes: int) -> None:
            self.copies = 0

        def copy_from_host(self, batch: np.ndarray) -> None:
            self.copies += 1
            if self.copies == 2:
                raise MemoryError("cudaMemcpy failed on batch 2")

    base = type("IInt8EntropyCalibrator2", (), {"__init__": lambda self: None})
    trt = SimpleNamespace(IInt8EntropyCalibrator2=base)
    cal = _entropy_calibrator(trt, Calibration(np.zeros((96, 2), np.float32), batch_size=32), "x", Buffer)

    def binding_build() -> int:  # what TensorRT does: stop at the first None, ignore what was printed
        batches = 0
        while True:
            try:
                got = cal.get_batch(["x"])
            except Exception:  # the binding prints the traceback and carries on as "no more batches"
                got = None
            if got is None:
                return batches
            batches += 1

    assert binding_build() == 1  # calibration stopped early: only the first batch was used
    assert isinstance(cal.error, MemoryError)
    with pytest.raises(EngineError, match="int8 calibration failed at batch 1: MemoryError: cudaMemcpy failed") as info:
        raise_calibration_error(cal, "build")
    assert info.value.__cause__ is cal.error
    raise_calibration_error(SimpleNamespace(error=None), "build")  # nothing happened: nothing raised
