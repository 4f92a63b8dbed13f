"""The pytest plugin as users get it (entry point), exercised with pytester."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_options_and_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    for option in ("--trt-equiv-model", "--trt-equiv-data", "--trt-equiv-backends", "--trt-equiv-batch-sizes",
                   "--trt-equiv-cache-dir", "--trt-equiv-precisions", "--trt-equiv-tolerance"):  # fmt: skip
        result.stdout.fnmatch_lines([f"*{option}*"])
    markers = pytester.runpytest("--markers")
    for marker in ("equivalence", "gpu", "tensorrt", "cpp", "slow"):
        markers.stdout.fnmatch_lines([f"@pytest.mark.{marker}:*"])


def test_backend_and_batch_size_parametrization(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_pair(backend, batch_size):
            pass
        """
    )
    result = pytester.runpytest(
        "--collect-only", "-q", "--trt-equiv-backends", "onnxruntime,tensorrt", "--trt-equiv-precisions",
        "fp32,int8", "--trt-equiv-batch-sizes", "1,all",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        ["*test_pair?onnxruntime-fp32-b1?*", "*test_pair?tensorrt-int8-ball?*", "8 tests collected*"]
    )


def test_tensorrt_params_carry_gpu_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_pair(backend):\n    pass\n")
    result = pytester.runpytest(
        "--collect-only", "-q", "-m", "not gpu", "--trt-equiv-backends", "onnxruntime,tensorrt,cpp",
        "--trt-equiv-precisions", "fp16",
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*onnxruntime-fp16*", "1/3 tests collected (2 deselected)*"])


def test_unavailable_backend_skips_with_reason_naming_what_is_missing(pytester: pytest.Pytester) -> None:
    from trt_equiv.pipeline import Pipeline

    reason = Pipeline.unavailable_reason("tensorrt")
    if reason is None:
        pytest.skip("TensorRT can execute on this GPU machine; the skip path cannot be shown here")
    pytester.makepyfile("def test_pair(backend):\n    assert False, 'must not run'\n")
    result = pytester.runpytest("-rs", "--trt-equiv-backends", "tensorrt", "--trt-equiv-precisions", "fp32")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*tensorrt-fp32: *"])
    assert any(word in result.stdout.str() for word in ("TensorRT not installed", "no CUDA GPU", "do not run on"))


def test_bad_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--trt-equiv-backends", "caffe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-equiv-backends: expected a comma list from*"])


def test_fixtures_give_a_pipeline_and_policy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fixtures(trt_equiv_pipeline, trt_equiv_data, tolerance_policy):
            assert len(trt_equiv_data) >= 300
            assert trt_equiv_pipeline.data is trt_equiv_data
            assert tolerance_policy.lookup("fp16").max_abs == 0.25
        """
    )
    result = pytester.runpytest("--trt-equiv-tolerance", "fp16.max_abs=0.25", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_savedmodel_is_parametrized_once_in_fp32(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_pair(backend):\n    pass\n")
    result = pytester.runpytest(
        "--collect-only", "-q", "--trt-equiv-backends", "savedmodel,onnxruntime", "--trt-equiv-precisions", "fp32,fp16"
    )
    result.stdout.fnmatch_lines(["*savedmodel-fp32*", "*onnxruntime-fp16*", "3 tests collected*"])
    assert "savedmodel-fp16" not in result.stdout.str()
