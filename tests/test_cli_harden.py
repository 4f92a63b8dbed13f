"""Bad inputs that used to end in a traceback or a silent success (issue 12 items 9 and 11): each is now a clean
error (exit 2, a message saying what was expected and what came) or, for a fixed batch of 1, simply works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trt_equiv.cli import main
from trt_equiv.errors import InputValidationError
from trt_equiv.pipeline import Pipeline


def _fixed_batch_copy(src: Path, dst: Path, batch: int) -> Path:
    import onnx

    model = onnx.load(str(src))
    for v in [*model.graph.input, *model.graph.output]:
        v.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def junk_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("junk") / "random.onnx"
    path.write_bytes(np.random.default_rng(12).bytes(5000))
    return path


def _assert_clean_usage_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("precisions", ["fp16,int8", "fp32"])
def test_build_from_random_bytes_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], junk_onnx: Path, tmp_path: Path, precisions: str
) -> None:
    code = main(["build", "--onnx", str(junk_onnx), "--precisions", precisions, "--cache-dir", str(tmp_path)])
    _assert_clean_usage_error(code, capsys.readouterr().err, "--onnx", str(junk_onnx), "expected an ONNX model")


def test_recipes_given_random_bytes_raise_a_trt_equiv_error(junk_onnx: Path, tmp_path: Path) -> None:
    from trt_equiv.convert.precision import fp16_onnx, int8_qdq_onnx
    from trt_equiv.data import BUNDLED_CALIBRATION, load_npz
    from trt_equiv.errors import TrtEquivError

    with pytest.raises(TrtEquivError, match="expected an ONNX model"):
        fp16_onnx(junk_onnx, cache_dir=tmp_path)
    with pytest.raises(TrtEquivError, match="expected an ONNX model"):
        int8_qdq_onnx(junk_onnx, load_npz(BUNDLED_CALIBRATION).take(64), cache_dir=tmp_path)


def test_check_onnx_with_a_fixed_batch_of_one_runs_one_sample_at_a_time(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    fixed = _fixed_batch_copy(trt_equiv_pipeline.onnx("fp32"), tmp_path / "batch1.onnx", 1)
    code = main(["check", "--onnx", str(fixed), "--backends", "onnxruntime", "--precisions", "fp32",
                 "--batch-sizes", "1,7,32", "--cache-dir", str(trt_equiv_pipeline.cache_dir)])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "EQUIVALENT: 4 passed, 0 failed" in out  # the data / reference stage and three batch sizes


def test_int8_calibrates_a_fixed_batch_model_in_batches_of_its_size(
    trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend
    from trt_equiv.convert.precision import int8_qdq_onnx
    from trt_equiv.data import BUNDLED_CALIBRATION, load_npz

    fixed = _fixed_batch_copy(trt_equiv_pipeline.onnx("fp32"), tmp_path / "batch1.onnx", 1)
    result = int8_qdq_onnx(fixed, load_npz(BUNDLED_CALIBRATION).take(40), cache_dir=tmp_path)
    assert result.info["calibration_samples"] == 40
    assert trt_equiv_pipeline.data is not None
    with OnnxRuntimeBackend(result.path, precision="int8") as int8:
        assert int8.infer(trt_equiv_pipeline.data.x[:3]).shape[0] == 3


def test_a_fixed_batch_larger_than_one_splits_and_names_a_partial_batch(
    trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    from trt_equiv.backends.onnxruntime import OnnxRuntimeBackend

    fp32 = trt_equiv_pipeline.onnx("fp32")
    fixed = _fixed_batch_copy(fp32, tmp_path / "batch3.onnx", 3)
    assert trt_equiv_pipeline.data is not None
    x = trt_equiv_pipeline.data.x[:7]
    with OnnxRuntimeBackend(fp32) as dynamic, OnnxRuntimeBackend(fixed) as three:
        assert three.max_batch == 3
        np.testing.assert_allclose(three.infer(x[:6]), dynamic.infer(x[:6]), rtol=1e-5, atol=1e-6)
        with pytest.raises(InputValidationError, match="fixed batch of 3.*got 1 sample"):
            three.infer(x)  # 3 + 3 + 1


# --------------------------------------------------------------------------------------- item 11


def test_build_runner_with_a_missing_tensorrt_root_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["build-runner", "--build-dir", str(tmp_path / "b"), "--tensorrt-root", "/nonexistent"])
    _assert_clean_usage_error(code, capsys.readouterr().err, "--tensorrt-root", "/nonexistent")
    assert not (tmp_path / "b").exists(), "nothing is configured for a root that does not exist"


def test_build_runner_with_a_root_that_has_no_tensorrt_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = tmp_path / "not_tensorrt"
    empty.mkdir()
    code = main(["build-runner", "--build-dir", str(tmp_path / "b"), "--tensorrt-root", str(empty)])
    _assert_clean_usage_error(code, capsys.readouterr().err, "--tensorrt-root", "NvInfer.h")


def test_check_refuses_a_truncated_engine_that_has_no_json(
    capsys: pytest.CaptureFixture[str], trt_equiv_pipeline: Pipeline, tmp_path: Path
) -> None:
    from trt_equiv.runtime import TENSORRT_MODULES, is_available

    if not any(is_available(m) for m in TENSORRT_MODULES):
        pytest.skip(f"no TensorRT module installed ({', '.join(TENSORRT_MODULES)}): no engine to truncate")
    from tests.trt import models
    from trt_equiv.trt.cache import EngineCache

    entry = EngineCache(tmp_path / "engines").get(models.tiny_fp32(tmp_path / "tiny.onnx"), progress=False)
    lone = tmp_path / "user" / "model.engine"
    lone.parent.mkdir()
    lone.write_bytes(entry.path.read_bytes()[:-4096])
    code = main(
        ["check", "--engine", str(lone), "--precisions", "fp32", "--cache-dir", str(trt_equiv_pipeline.cache_dir)]
    )
    _assert_clean_usage_error(code, capsys.readouterr().err, "--engine is not usable", "problem:")
