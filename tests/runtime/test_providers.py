import logging

import pytest

from edgedet.runtime import providers as P
from edgedet.runtime.providers import (CUDAOptions, ProviderError, TensorRTOptions, provider_options,
                                       resolve_providers)

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_auto_order_prefers_tensorrt_then_cuda_then_platform_then_cpu():
    available = ["CPUExecutionProvider", "OpenVINOExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert resolve_providers("auto", available) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers("auto", ["CPUExecutionProvider", "AzureExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers("auto", ["CoreMLExecutionProvider", "CPUExecutionProvider"])[0] == "CoreMLExecutionProvider"


def test_explicit_names_and_aliases():
    assert resolve_providers("trt,cuda", ["CPUExecutionProvider"]) == GPU_BUILD
    assert resolve_providers(["CUDAExecutionProvider"], []) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers("cpu", GPU_BUILD) == ["CPUExecutionProvider"]


def test_unknown_provider_lists_valid_and_suggests():
    with pytest.raises(ProviderError, match=r"unknown provider 'tensorrtt'; valid: auto, tensorrt, cuda.*Did you mean 'tensorrt'\?"):
        resolve_providers("tensorrtt", GPU_BUILD)
    with pytest.raises(ProviderError, match="cannot be combined"):
        resolve_providers("auto,cpu", GPU_BUILD)


def test_tensorrt_options():
    opts = provider_options(
        "TensorrtExecutionProvider", device_id=1,
        tensorrt=TensorRTOptions(fp16=True, engine_cache_dir="/c", timing_cache_dir="/t", workspace_bytes=1 << 30,
                                 builder_optimization_level=4, batch_profile=(1, 4, 8)),
        input_chw=(3, 416, 416),
    )
    assert opts == {
        "device_id": "1", "trt_fp16_enable": "1", "trt_int8_enable": "0",
        "trt_engine_cache_enable": "1", "trt_engine_cache_path": "/c",
        "trt_timing_cache_enable": "1", "trt_timing_cache_path": "/t",
        "trt_max_workspace_size": str(1 << 30), "trt_builder_optimization_level": "4",
        "trt_profile_min_shapes": "images:1x3x416x416", "trt_profile_opt_shapes": "images:4x3x416x416",
        "trt_profile_max_shapes": "images:8x3x416x416",
    }
    assert all(isinstance(v, str) for v in opts.values())


def test_tensorrt_option_validation():
    with pytest.raises(ValueError, match="1 <= min <= opt <= max"):
        TensorRTOptions(batch_profile=(4, 2, 8))
    with pytest.raises(ValueError, match="0..5"):
        TensorRTOptions(builder_optimization_level=9)
    with pytest.raises(ValueError, match="needs the input's C, H, W"):
        provider_options("TensorrtExecutionProvider", tensorrt=TensorRTOptions(batch_profile=(1, 1, 2)))


def test_cuda_and_cpu_options():
    assert provider_options("CUDAExecutionProvider", 2, cuda=CUDAOptions("HEURISTIC", 1 << 30, True)) == {
        "device_id": "2", "cudnn_conv_algo_search": "HEURISTIC", "gpu_mem_limit": str(1 << 30), "enable_cuda_graph": "1"}
    assert provider_options("CPUExecutionProvider") == {}
    with pytest.raises(ValueError, match="EXHAUSTIVE, HEURISTIC or DEFAULT"):
        CUDAOptions("FAST")


class _FakeSession:
    """What onnxruntime-gpu does on a machine without CUDA libraries: accepts the GPU
    providers and quietly runs on CPU."""

    created_with = None

    def __init__(self, model, options, providers):
        _FakeSession.created_with = providers

    def get_providers(self):
        return ["CPUExecutionProvider"]


@pytest.fixture
def gpu_build_without_gpu(monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: list(GPU_BUILD))
    monkeypatch.setattr(ort, "InferenceSession", _FakeSession)
    monkeypatch.setattr(P, "_warned", set())


def test_silent_gpu_fallback_is_detected_and_warned_once(gpu_build_without_gpu, caplog):
    with caplog.at_level(logging.WARNING):
        _, info = P.create_session("m.onnx", "cuda")
        P.create_session("m.onnx", "cuda")
    assert [p for p, _ in _FakeSession.created_with] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert info.provider == "CPUExecutionProvider"
    assert caplog.text.count("requested CUDAExecutionProvider but the session runs on CPUExecutionProvider") == 1
    assert "its libraries could not be loaded" in info.warnings[0]


def test_strict_makes_fallback_an_error(gpu_build_without_gpu):
    with pytest.raises(ProviderError, match="requested TensorrtExecutionProvider.*strict mode allows no fallback"):
        P.create_session("m.onnx", "tensorrt", strict=True)


def test_auto_reports_what_it_got(gpu_build_without_gpu):
    _, info = P.create_session("m.onnx", "auto")
    assert info.requested == GPU_BUILD
    assert info.warnings == ["auto: TensorrtExecutionProvider is listed but the session runs on CPUExecutionProvider: "
                             + P.LIBRARIES_MISSING]


def test_cpu_threads_and_spinning_reach_session_options(monkeypatch):
    import onnxruntime as ort

    seen = {}

    class Capture(_FakeSession):
        def __init__(self, model, options, providers):
            seen["threads"] = options.intra_op_num_threads
            seen["spin"] = options.get_session_config_entry("session.intra_op.allow_spinning")

    monkeypatch.setattr(ort, "InferenceSession", Capture)
    P.create_session("m.onnx", "cpu", cpu=P.CPUOptions(threads=3, spinning=False))
    assert seen == {"threads": 3, "spin": "0"}


def test_onnxruntime_messages_only_at_debug(gpu_build_without_gpu, monkeypatch):
    # A GPU build without CUDA prints about ten lines of library-load errors before edgedet's one
    # warning; they are hidden unless edgedet logs at DEBUG (the CLI's -v).
    import onnxruntime as ort

    severities = []
    monkeypatch.setattr(ort, "set_default_logger_severity", severities.append)
    logger = logging.getLogger("edgedet")
    old = logger.level
    try:
        logger.setLevel(logging.INFO)
        P.create_session("m.onnx", "cpu")
        logger.setLevel(logging.DEBUG)
        P.create_session("m.onnx", "cpu")
    finally:
        logger.setLevel(old)
    assert severities == [4, 2]
