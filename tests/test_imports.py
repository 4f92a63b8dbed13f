"""Every module imports with none of the heavy runtimes installed (lazy imports, DESIGN.md §9.3)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import trt_equiv
from trt_equiv.errors import MissingRuntimeError
from trt_equiv.runtime import HEAVY_MODULES, require

# Blocks the heavy runtimes in a fresh interpreter, then imports every trt_equiv module.
_PROBE = """
import importlib, importlib.abc, pkgutil, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED or name in BLOCKED:
            raise ImportError(f"blocked for test: {{name}}")
sys.meta_path.insert(0, Block())
import trt_equiv
for m in pkgutil.walk_packages(trt_equiv.__path__, "trt_equiv."):
    importlib.import_module(m.name)
leaked = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
assert not leaked, leaked
from trt_equiv.runtime import require
try:
    require("onnxruntime")
except ImportError as exc:
    print("HINT:", exc)
"""


def test_every_module_imports_without_heavy_runtimes() -> None:
    blocked = sorted({m.split(".")[0] for m in HEAVY_MODULES})
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(blocked=blocked)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "HINT: onnxruntime is not installed" in proc.stdout and "pip install" in proc.stdout


def test_module_list_is_complete() -> None:
    names = {m.name for m in pkgutil.walk_packages(trt_equiv.__path__, "trt_equiv.")}
    assert {"trt_equiv.plugin", "trt_equiv.cli", "trt_equiv.compare", "trt_equiv.backends.savedmodel"} <= names


def test_require_names_the_package_to_install() -> None:
    try:
        require("surely_not_a_module_xyz")
    except MissingRuntimeError as exc:
        assert "pip install surely_not_a_module_xyz" in str(exc)
    else:
        raise AssertionError("require() must raise for a missing module")
