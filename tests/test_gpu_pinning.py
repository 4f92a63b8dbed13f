"""One pytest-xdist worker per GPU: each worker pins itself with CUDA_VISIBLE_DEVICES from its worker id."""

from __future__ import annotations

import json

import pytest

from trt_equiv.plugin import assign_gpus, parse_gpus
from trt_equiv.runtime import cuda_devices

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: a test file that records, per worker, the GPU it was given and what CUDA shows it
RECORDER = """
import json, os
from pathlib import Path

def test_record(tmp_path_factory):
    seen = {"worker": os.environ.get("PYTEST_XDIST_WORKER"), "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if os.environ.get("RECORD_CUDA"):
        from cuda.bindings import runtime as cudart
        err, count = cudart.cudaGetDeviceCount()
        seen["count"] = count
        seen["uuids"] = [bytes(cudart.cudaGetDeviceProperties(i)[1].uuid.bytes).hex() for i in range(count)]
        seen["names"] = [cudart.cudaGetDeviceProperties(i)[1].name.decode().rstrip("\\x00") for i in range(count)]
    out = Path(os.environ["RECORD_DIR"]) / f"{seen['worker']}.json"
    out.write_text(json.dumps(seen))
"""


def _records(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[object, list[dict]]:
    record_dir = pytester.mkdir("records")
    monkeypatch.setenv("RECORD_DIR", str(record_dir))
    pytester.makepyfile(test_rec=RECORDER.replace("def test_record", "def test_a"))
    pytester.makepyfile(test_rec2=RECORDER.replace("def test_record", "def test_b"))
    result = pytester.runpytest_subprocess("-q", *(("-p", "xdist", "--dist", "each") if "-n" in args else ()), *args)
    return result, [json.loads(p.read_text()) for p in sorted(record_dir.iterdir())]


def test_parse_gpus() -> None:
    assert parse_gpus("auto") is None
    assert parse_gpus("none") == ()
    assert parse_gpus(" 2, 0 ") == ("2", "0")
    assert parse_gpus("GPU-ab12,GPU-cd34") == ("GPU-ab12", "GPU-cd34")
    for bad in ("0,,1", "1,1"):
        with pytest.raises(pytest.UsageError, match="expected 'auto', 'none' or distinct GPU ids"):
            parse_gpus(bad)


def test_assign_gpus_from_option_environment_and_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6,7")
    assert assign_gpus(2, "auto") == ["4", "6"]
    assert assign_gpus(2, "1,0") == ["1", "0"]  # explicit ids win over the environment
    assert assign_gpus(3, "none") == []
    with pytest.raises(
        pytest.UsageError, match=r"3 workers for 2 GPU\(s\) \['1', '0'\] \(--trt-equiv-gpus\); use -n 2"
    ):
        assign_gpus(3, "1,0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    devices = len(cuda_devices())
    if devices:
        assert assign_gpus(devices, "auto") == [str(i) for i in range(devices)]
    else:  # no GPU: workers run unpinned, so CPU-only suites still parallelise
        assert assign_gpus(4, "auto") == []


def test_each_worker_pins_its_own_gpu(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result, records = _records(pytester, monkeypatch, "-n", "2", "--trt-equiv-gpus", "3,5")
    result.assert_outcomes(passed=4)
    assert {r["worker"]: r["visible"] for r in records} == {"gw0": "3", "gw1": "5"}


def test_more_workers_than_gpus_is_a_clear_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, records = _records(pytester, monkeypatch, "-n", "3", "--trt-equiv-gpus", "0,1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected at most one pytest-xdist worker per GPU, got 3 workers for 2 GPU(s)*"])
    assert records == []  # no test ran


def test_none_leaves_workers_unpinned(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result, records = _records(pytester, monkeypatch, "-n", "2", "--trt-equiv-gpus", "none")
    result.assert_outcomes(passed=4)
    assert [r["visible"] for r in records] == [None, None]


@pytest.mark.gpu
def test_workers_see_one_distinct_gpu_each(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a machine with several GPUs: CUDA itself shows each worker one device, a different one each."""
    devices = cuda_devices()
    if len(devices) < 2:
        pytest.skip(f"needs 2 CUDA GPUs, this machine has {len(devices)}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("RECORD_CUDA", "1")
    result, records = _records(pytester, monkeypatch, "-n", str(len(devices)))
    result.assert_outcomes(passed=2 * len(devices))
    print(json.dumps(records, indent=1))
    assert all(r["count"] == 1 for r in records)
    assert sorted(r["uuids"][0] for r in records) == sorted(uuid for _, _, uuid in devices)


def test_without_xdist_explicit_gpus_pin_this_process(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result, records = _records(pytester, monkeypatch, "--trt-equiv-gpus", "7,2", "-p", "no:xdist")
    result.assert_outcomes(passed=2)
    assert [(r["worker"], r["visible"]) for r in records] == [(None, "7")]
