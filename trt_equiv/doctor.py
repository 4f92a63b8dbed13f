"""``trt-equiv doctor``: what is installed and usable here, and which backends each missing piece stops.

Every verdict comes from the probes the pipeline itself uses (``trt_equiv.runtime``,
``Pipeline.unavailable_reason``, ``runner_unavailable_reason``), so doctor cannot disagree with what a check
or a benchmark will then do. Nothing here imports TensorFlow: its version is read from package metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trt_equiv.runtime import (
    INSTALL_HINTS,
    RTX_MODULES,
    TENSORRT_MODULES,
    cuda_devices,
    cuda_unavailable_reason,
    cuda_versions,
    is_available,
    onnxruntime_cuda_unavailable_reason,
    package_version,
    require,
    tensorrt_execution_unavailable_reason,
)

#: every TensorRT flavour doctor looks for (``tensorrt_lean`` runs engines built version-compatible)
TENSORRT_FLAVOURS = (*TENSORRT_MODULES, "tensorrt_lean")


@dataclass
class Component:
    """One piece of the GPU stack: found or not, with its version or the reason it is unusable."""

    name: str
    ok: bool
    detail: str


@dataclass
class Diagnosis:
    components: list[Component] = field(default_factory=list)
    #: backend -> None when it runs here, else the reason (the pipeline's own words)
    backends: dict[str, str | None] = field(default_factory=dict)
    #: backend -> None when its runtime alone can run here (given ready --onnx/--engine artefacts), else why not
    runtimes: dict[str, str | None] = field(default_factory=dict)

    def format(self) -> str:
        lines = ["trt-equiv doctor: what this machine can run", ""]
        width = max(len(c.name) for c in self.components)
        for c in self.components:
            lines.append(f"  {'ok ' if c.ok else '-- '} {c.name:<{width}}  {c.detail}")
        lines += ["", "backends:"]
        for backend, reason in self.backends.items():
            runtime = self.runtimes.get(backend, reason)
            if reason is not None and runtime is None:  # only the conversion tools are missing
                lines.append(f"  {backend:<12} runs here on given artefacts (--onnx/--engine + --golden); "
                             f"converting needs: {reason}")  # fmt: skip
            else:
                lines.append(f"  {backend:<12} {'runs here' if reason is None else 'will not run: ' + reason}")
        missing = [b for b, r in self.backends.items() if r is not None]
        lines += ["", f"{len(self.backends) - len(missing)} of {len(self.backends)} backends can run here"
                  + (f"; not: {', '.join(missing)}" if missing else "")]  # fmt: skip
        if self.backends.get("savedmodel") is not None:
            lines.append("without TensorFlow, check against golden outputs made elsewhere: trt-equiv golden / --golden")
        return "\n".join(lines)


def _module_version(module: str) -> tuple[bool, str]:
    """(usable, version or why not) for an installed module; imported, since a broken install hides in it."""
    if not is_available(module):
        return False, "not installed"
    try:
        mod = require(module)
    except Exception as exc:  # a wheel without its shared libraries fails on import
        return False, f"installed but does not import: {exc}"
    return True, str(getattr(mod, "__version__", "version unknown"))


def diagnose() -> Diagnosis:
    """Probe the GPU stack and every backend."""
    from trt_equiv.backends.cpp import runner_unavailable_reason
    from trt_equiv.pipeline import BACKENDS, Pipeline

    d = Diagnosis()
    devices = cuda_devices()
    versions = cuda_versions()
    gpu_reason = cuda_unavailable_reason()
    if devices:
        listing = "; ".join(f"{i}: {name} (sm_{cc[0]}{cc[1]})" for i, (name, cc, _uuid) in enumerate(devices))
        d.components.append(Component("GPU", True, f"{len(devices)} visible — {listing}"))
    else:
        d.components.append(Component("GPU", False, gpu_reason or "no CUDA device visible"))
    driver_ok = versions["driver"] != "none" or versions["cuda_driver_api"] != "none"
    d.components.append(Component("NVIDIA driver", driver_ok, (
        f"{versions['driver']} (supports CUDA {versions['cuda_driver_api']})" if driver_ok
        else "not found (no /proc/driver/nvidia/version, no CUDA driver API)")))  # fmt: skip
    runtime_ok = versions["cuda_runtime"] != "none"
    cuda_python = package_version("cuda-python", "cuda-bindings")
    d.components.append(Component("CUDA runtime", runtime_ok, (
        f"{versions['cuda_runtime']} (cuda-python {cuda_python})" if runtime_ok
        else f"not usable (cuda-python {cuda_python}); pip install 'trt-equiv[gpu-cu13]' or '[gpu-cu12]'"),
    ))  # fmt: skip
    found = False
    for module in TENSORRT_FLAVOURS:
        ok, detail = _module_version(module)
        found = found or ok
        if ok and module in RTX_MODULES:
            detail += " (TensorRT for RTX: builds engines anywhere; runs them on RTX-class GPUs, not Hopper)"
        if ok or detail != "not installed":
            d.components.append(Component(f"TensorRT ({module})", ok, detail))
    if not found:
        d.components.append(Component("TensorRT", False, f"not installed (none of {', '.join(TENSORRT_FLAVOURS)})"))
    ok, detail = _module_version("onnxruntime")
    if ok:
        providers = require("onnxruntime").get_available_providers()
        detail = f"{detail}, providers {', '.join(providers)}"
    cpu_wheel, gpu_wheel = package_version("onnxruntime"), package_version("onnxruntime-gpu")
    if "none" not in (cpu_wheel, gpu_wheel):
        ok = False
        detail += (f"; both onnxruntime {cpu_wheel} and onnxruntime-gpu {gpu_wheel} are installed and overwrite "
                   "each other's module: pip uninstall -y onnxruntime onnxruntime-gpu, then reinstall one")  # fmt: skip
    d.components.append(Component("ONNX Runtime", ok, detail))
    cuda_ep = onnxruntime_cuda_unavailable_reason()
    d.components.append(Component("ONNX Runtime CUDA", cuda_ep is None, cuda_ep or "CUDA provider loads"))
    tf = package_version("tensorflow", "tensorflow-cpu", "tf-nightly")
    d.components.append(Component("TensorFlow", is_available("tensorflow"),
                                  tf if is_available("tensorflow") else "not installed"))  # fmt: skip
    runner = runner_unavailable_reason()
    d.components.append(Component("C++ runner", runner is None, "found" if runner is None else runner))
    d.backends = {backend: Pipeline.unavailable_reason(backend) for backend in BACKENDS}
    d.runtimes = runtime_reasons()
    return d


def runtime_reasons() -> dict[str, str | None]:
    """Per candidate backend, whether its runtime alone can run here (artefacts given, nothing converted).

    ``Pipeline.unavailable_reason`` also asks for the conversion tools (tf2onnx), which a GPU runner checking
    ready ONNX files or engines against golden outputs does not need; these are the same probes without them.
    """
    from trt_equiv.backends.cpp import runner_unavailable_reason

    trt = tensorrt_execution_unavailable_reason()
    ort = None if is_available("onnxruntime") else f"onnxruntime not installed ({INSTALL_HINTS['onnxruntime']})"
    return {
        "onnxruntime": ort,
        "ortcuda": onnxruntime_cuda_unavailable_reason(),
        "tensorrt": trt,
        "cpp": trt or runner_unavailable_reason(),
    }
