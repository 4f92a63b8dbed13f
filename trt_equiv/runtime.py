"""The one availability probe and lazy importer for heavy runtimes.

Importing trt_equiv must stay cheap and must work with none of TensorFlow, ONNX Runtime, TensorRT or CUDA
installed; each runtime is imported here, on first use, and a missing one raises an error that names the
package to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from types import ModuleType

from trt_equiv.errors import MissingRuntimeError

#: which cuda-python goes with which NVIDIA driver (the CUDA major version its runtime needs)
CUDA_PYTHON_HINT = (
    "pip install 'trt-equiv[cuda13]' (cuda-python 13, NVIDIA driver >= 580) or 'trt-equiv[cuda12]' "
    "(cuda-python 12.6.1..12.x, driver >= 525); nvidia-smi shows the driver"
)

#: module name -> what to install to get it
INSTALL_HINTS: dict[str, str] = {
    "tensorflow": "pip install 'trt-equiv[tf]'  (tensorflow-cpu or tensorflow)",
    "tf2onnx": "pip install 'trt-equiv[tf]'  (tf2onnx)",
    "onnx": "pip install 'trt-equiv[onnx]'  (onnx)",
    "onnxruntime": "pip install 'trt-equiv[onnx]'  (onnxruntime, or onnxruntime-gpu on CUDA machines)",
    "onnxconverter_common": "pip install 'trt-equiv[onnx]'  (onnxconverter-common)",
    "tensorrt": "install TensorRT (NVIDIA's container, or pip install tensorrt from NVIDIA's index)",
    "tensorrt_rtx": "pip install 'trt-equiv[trt-rtx]'  (tensorrt-rtx-cu13-libs + tensorrt-rtx-cu13-bindings)",
    "tensorrt_rtx_bindings": "pip install 'trt-equiv[trt-rtx]'  (tensorrt-rtx-cu13-libs + tensorrt-rtx-cu13-bindings)",
    "tensorrt_bindings": "install TensorRT 11 (pip install tensorrt-cu13, or the split -libs + -bindings wheels)",
    "cuda.bindings": CUDA_PYTHON_HINT,
    "pycuda": "pip install pycuda",
    "matplotlib": "pip install 'trt-equiv[report]'  (matplotlib)",
    "sklearn": "pip install scikit-learn  (only to regenerate the bundled fixtures)",
}

#: every heavy runtime trt_equiv imports lazily (and only through ``require``)
HEAVY_MODULES = (
    "tensorflow", "tf2onnx", "keras", "onnx", "onnxruntime", "onnxconverter_common", "tensorrt", "tensorrt_bindings",
    "tensorrt_rtx", "tensorrt_rtx_bindings", "tensorrt_lean", "tensorrt_lean_bindings", "cuda", "pycuda",
    "matplotlib", "sklearn", "modelopt", "torch",
)  # fmt: skip

#: TensorRT flavours, preferred first; all expose the same Python API names. TensorRT 11's split wheels
#: (``tensorrt-cu13-bindings`` + ``-libs``, without the ``tensorrt`` front end) import as ``tensorrt_bindings``;
#: TensorRT for RTX is imported as ``tensorrt_rtx`` from its front-end package, or as ``tensorrt_rtx_bindings``
#: when only the split ``tensorrt-rtx-cu13-bindings`` + ``-libs`` wheels are installed.
#: The TensorRT 11 lean runtime (``tensorrt_lean``, or ``tensorrt_lean_bindings`` from its split wheels) only
#: deserializes and runs engines, so it comes last: the builder needs one of the others.
TENSORRT_MODULES = (
    "tensorrt", "tensorrt_bindings", "tensorrt_rtx", "tensorrt_rtx_bindings", "tensorrt_lean", "tensorrt_lean_bindings",
)  # fmt: skip
RTX_MODULES = ("tensorrt_rtx", "tensorrt_rtx_bindings")


def package_version(*distributions: str) -> str:
    """Installed version of the first distribution found (e.g. "tensorflow", "tensorflow-cpu"), or "none".

    Read from package metadata: cache keys need versions without importing heavy runtimes.
    """
    from importlib.metadata import PackageNotFoundError, version

    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "none"


def is_available(module: str) -> bool:
    """True when ``module`` can be imported (found on the path; not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # parent package missing, or a broken namespace package
        return False


def require(module: str) -> ModuleType:
    """Import ``module`` or raise MissingRuntimeError naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = INSTALL_HINTS.get(module) or INSTALL_HINTS.get(module.split(".")[0], f"pip install {module}")
        raise MissingRuntimeError(f"{module} is not installed ({exc}); install it with: {hint}") from exc


def tensorrt_module(prefer: str | None = None) -> ModuleType:
    """The TensorRT Python module to use: ``prefer`` if given, else ``tensorrt``, else ``tensorrt_rtx``."""
    names = (prefer,) if prefer else TENSORRT_MODULES
    for name in names:
        if is_available(name):
            return require(name)
    wanted = " or ".join(names)
    hints = "; ".join(INSTALL_HINTS[n] for n in names if n in INSTALL_HINTS)
    raise MissingRuntimeError(f"TensorRT Python module not installed (looked for {wanted}); {hints}")


#: cudaErrorInsufficientDriver: the driver is older than the CUDA runtime cuda-python was built for, or absent
_CUDA_INSUFFICIENT_DRIVER = 35


def _cuda_version(v: int) -> str:
    """12040 -> '12.4' (the encoding of cudaDriverGetVersion / cudaRuntimeGetVersion)."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def _probe_cudart(cudart: ModuleType) -> tuple[tuple[str, tuple[int, int]] | None, str]:
    """Device 0 through cuda-python's runtime API; an InsufficientDriver result says which side is too old."""
    err, count = cudart.cudaGetDeviceCount()
    if int(err) == _CUDA_INSUFFICIENT_DRIVER:
        _, driver = cudart.cudaDriverGetVersion()
        _, runtime = cudart.cudaRuntimeGetVersion()
        driver, runtime = int(driver or 0), int(runtime or 0)
        if driver == 0:
            return None, "no CUDA GPU (no NVIDIA driver found: libcuda is not installed or not loadable)"
        return None, (
            f"no usable CUDA GPU: driver/cuda-python mismatch — the NVIDIA driver supports CUDA up to "
            f"{_cuda_version(driver)}, but the installed cuda-python is built for CUDA {_cuda_version(runtime)} "
            f"and needs a newer driver; install the cuda-python that matches the driver: {CUDA_PYTHON_HINT}"
        )
    if int(err) != 0 or count < 1:
        name = getattr(err, "name", str(err))
        return None, f"no CUDA GPU (cudaGetDeviceCount: {name}, count {count if int(err) == 0 else 0})"
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        return None, f"no CUDA GPU (cudaGetDeviceProperties: {getattr(err, 'name', err)})"
    raw = props.name
    name = raw.decode(errors="replace").rstrip("\x00") if isinstance(raw, bytes) else str(raw)
    return (name, (int(props.major), int(props.minor))), ""


def _probe_pycuda() -> tuple[tuple[str, tuple[int, int]] | None, str]:
    """Device 0 through pycuda's driver API (the other CUDA binding ``trt_equiv.trt.cuda`` accepts)."""
    try:
        drv = importlib.import_module("pycuda.driver")
        drv.init()
        count = int(drv.Device.count())
    except Exception as exc:  # pycuda raises pycuda.driver.Error (or ImportError of libcuda) for a missing driver
        return None, f"no CUDA GPU (pycuda: {type(exc).__name__}: {exc})"
    if count < 1:
        return None, "no CUDA GPU (pycuda: Device.count() is 0)"
    dev = drv.Device(0)
    major, minor = dev.compute_capability()
    return (str(dev.name()), (int(major), int(minor))), ""


@lru_cache(maxsize=1)
def _probe_cuda() -> tuple[tuple[str, tuple[int, int]] | None, str]:
    """(device 0 as (name, compute capability), or None with the reason): cuda-python first, else pycuda."""
    if is_available("cuda.bindings"):
        try:
            cudart = importlib.import_module("cuda.bindings.runtime")
        except ImportError as exc:
            return None, f"cuda-python unusable ({exc}); {CUDA_PYTHON_HINT}"
        return _probe_cudart(cudart)
    if is_available("pycuda"):
        return _probe_pycuda()
    return None, f"neither cuda-python nor pycuda is installed ({CUDA_PYTHON_HINT}, or pip install pycuda)"


def cuda_device() -> tuple[str, tuple[int, int]] | None:
    """(name, compute capability) of CUDA device 0, or None when there is no usable GPU or driver."""
    return _probe_cuda()[0]


def cuda_unavailable_reason() -> str | None:
    """None when a CUDA GPU is usable, else why not (package, driver or device)."""
    device, reason = _probe_cuda()
    return None if device else reason


def tensorrt_execution_unavailable_reason(prefer: str | None = None) -> str | None:
    """None when TensorRT engines can execute here, else a reason naming what is missing.

    Execution needs a TensorRT module, a CUDA GPU and cuda-python. TensorRT for RTX engines additionally
    do not run on data-centre GPUs (Hopper, compute capability 9.x).
    """
    names = (prefer,) if prefer else TENSORRT_MODULES
    found = [n for n in names if is_available(n)]
    if not found:
        return f"TensorRT not installed (no {' or '.join(names)} module)"
    device = cuda_device()
    if device is None:
        return f"{cuda_unavailable_reason()} — TensorRT engines cannot run here"
    if all(n in RTX_MODULES for n in found) and device[1][0] == 9:
        return f"TensorRT for RTX engines do not run on {device[0]} (compute capability 9.x); install tensorrt"
    return None


@lru_cache(maxsize=1)
def cuda_devices() -> tuple[tuple[str, tuple[int, int], str], ...]:
    """Every visible CUDA device as (name, compute capability, UUID); empty when none is usable.

    Counting through the runtime API initialises CUDA but creates no context, so a pytest-xdist controller
    may call it before its workers pin themselves with ``CUDA_VISIBLE_DEVICES``.
    """
    if _probe_cuda()[0] is None:
        return ()
    from cuda.bindings import runtime as cudart

    err, count = cudart.cudaGetDeviceCount()
    devices = []
    for index in range(count if int(err) == 0 else 0):
        err, props = cudart.cudaGetDeviceProperties(index)
        if int(err) != 0:
            continue
        raw = props.name
        name = raw.decode(errors="replace").rstrip("\x00") if isinstance(raw, bytes) else str(raw)
        uuid = bytes(props.uuid.bytes).hex() if hasattr(props.uuid, "bytes") else str(props.uuid)
        devices.append((name, (int(props.major), int(props.minor)), uuid))
    return tuple(devices)


def cuda_versions() -> dict[str, str]:
    """CUDA versions the driver supports and the runtime library provides, plus the kernel driver's own
    version (from /proc, no NVML needed); values are "none" where unknown."""
    versions = {"driver": "none", "cuda_driver_api": "none", "cuda_runtime": "none"}
    try:
        with open("/proc/driver/nvidia/version") as fh:
            words = fh.readline().split()
        versions["driver"] = next((w for w in words if w[:1].isdigit() and "." in w), "none")
    except OSError:
        pass
    if is_available("cuda.bindings"):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            return versions
        calls = (("cuda_driver_api", cudart.cudaDriverGetVersion), ("cuda_runtime", cudart.cudaRuntimeGetVersion))
        for key, call in calls:
            err, value = call()
            if int(err) == 0 and value:
                versions[key] = f"{value // 1000}.{value % 1000 // 10}"
    return versions


@lru_cache(maxsize=1)
def onnxruntime_cuda_unavailable_reason() -> str | None:
    """None when ONNX Runtime's CUDA execution provider can run here, else why not.

    ``get_available_providers()`` lists providers compiled into the wheel, not ones that can load: the CUDA
    provider library is loaded only when a session asks for it, and a missing cuDNN or cuBLAS then makes ONNX
    Runtime fall back to the CPU with a log line. So the library is loaded here (after ``preload_dlls``, which
    finds CUDA and cuDNN from NVIDIA's pip wheels) to name exactly what is missing.
    """
    if not is_available("onnxruntime"):
        return f"onnxruntime not installed ({INSTALL_HINTS['onnxruntime']})"
    ort = require("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (
            f"onnxruntime {getattr(ort, '__version__', '?')} has no CUDA provider (CPU-only wheel; install "
            "onnxruntime-gpu instead of onnxruntime: pip install 'trt-equiv[gpu-cu13]' or '[gpu-cu12]')"
        )
    if is_available("cuda.bindings") and cuda_device() is None:
        return f"{cuda_unavailable_reason()} — ONNX Runtime's CUDA provider needs a GPU"
    import contextlib
    import ctypes
    import os

    if hasattr(ort, "preload_dlls"):  # best effort: the library load below names what is still missing
        with contextlib.suppress(Exception):
            ort.preload_dlls(cuda=True, cudnn=True, msvc=False)
    capi = os.path.join(os.path.dirname(str(ort.__file__)), "capi")
    try:
        ctypes.CDLL(os.path.join(capi, "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(os.path.join(capi, "libonnxruntime_providers_cuda.so"))
    except OSError as exc:
        return f"ONNX Runtime's CUDA provider cannot load ({exc}); install the CUDA/cuDNN libraries it was built for"
    return None
