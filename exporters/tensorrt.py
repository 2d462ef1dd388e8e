"""Ahead-of-time TensorRT engines through ONNX Runtime's TensorRT provider.

Building the engine is what makes the first TensorRT session slow (minutes for the larger
models). ``build_engine`` creates one session with engine and timing caches in a folder
beside the model, so later sessions (``Detector(..., tensorrt=TensorRTOptions(
engine_cache_dir=...))``) load the engine instead of building it. Optionally it also
writes an EP-context model: an ``.onnx`` that embeds the engine itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

from edgedet.runtime.metadata import from_props
from edgedet.runtime.providers import TensorRTOptions, create_session

__all__ = ["EngineBuildError", "EngineBuild", "engine_options", "build_engine"]


class EngineBuildError(RuntimeError):
    """The TensorRT engine could not be built; the message says what is missing."""


@dataclass
class EngineBuild:
    model: Path
    cache_dir: Path
    seconds: float
    options: TensorRTOptions
    ep_context_model: Optional[Path]


def engine_options(
    model: Path,
    cache_dir: Optional[Path] = None,
    fp16: bool = False,
    int8: bool = False,
    batch_profile: Optional[Tuple[int, int, int]] = None,
    workspace_bytes: Optional[int] = None,
    builder_optimization_level: Optional[int] = None,
    ep_context: bool = False,
) -> TensorRTOptions:
    """The TensorRT options that ``build_engine`` uses (and that a Detector should use to
    find the cached engine): caches in ``<model stem>.trt/`` beside the model by default."""
    cache = cache_dir or model.with_name(model.stem + ".trt")
    return TensorRTOptions(
        fp16=fp16, int8=int8, engine_cache_dir=str(cache), timing_cache_dir=str(cache),
        workspace_bytes=workspace_bytes, builder_optimization_level=builder_optimization_level,
        batch_profile=batch_profile, dump_ep_context_model=ep_context,
        ep_context_path=str(model.with_name(model.stem + "_ctx.onnx")) if ep_context else None,
    )


def build_engine(
    model: Union[str, Path],
    cache_dir: Optional[Union[str, Path]] = None,
    *,
    fp16: bool = False,
    int8: bool = False,
    batch_profile: Optional[Tuple[int, int, int]] = None,
    workspace_bytes: Optional[int] = None,
    builder_optimization_level: Optional[int] = None,
    ep_context: bool = False,
    device_id: int = 0,
) -> EngineBuild:
    """Build (or refresh) the TensorRT engine of an edgedet ``.onnx`` model.

    ``int8`` requires a quantized (QDQ) model: the engine then follows its Q/DQ scales.
    For a dynamic-batch model ``batch_profile`` = (min, opt, max) sets the optimisation
    profile (default (1, 1, 8) when the batch is dynamic).

    Raises EngineBuildError, with one line naming what is missing, when ONNX Runtime has no
    TensorRT provider here or the session does not obtain it.
    """
    import onnxruntime as ort

    model = Path(model)
    if not model.is_file():
        raise EngineBuildError(f"{model}: no such model file")
    available = ort.get_available_providers()
    if "TensorrtExecutionProvider" not in available:
        raise EngineBuildError(
            "TensorRT is not available: this onnxruntime build has no TensorrtExecutionProvider "
            f"(it has {', '.join(available)}); install onnxruntime-gpu and NVIDIA TensorRT 10 on a machine with an NVIDIA GPU"
        )
    probe = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    meta = from_props(probe.get_modelmeta().custom_metadata_map)
    if int8 and meta.precision != "int8":
        raise EngineBuildError(f"{model}: int8 engines need a quantized model (edgedet quantize); this one is {meta.precision}")
    if meta.batch is None and batch_profile is None:
        batch_profile = (1, 1, 8)
    if meta.batch is not None and batch_profile is not None:
        raise EngineBuildError(f"{model}: has a fixed batch of {meta.batch}; batch profiles need a --dynamic-batch export")
    del probe
    options = engine_options(model, Path(cache_dir) if cache_dir else None, fp16, int8, batch_profile,
                             workspace_bytes, builder_optimization_level, ep_context)
    Path(options.engine_cache_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _session, info = create_session(str(model), "tensorrt", strict=True, device_id=device_id,
                                    tensorrt=options, input_chw=(3, *meta.input_size))
    if info.provider != "TensorrtExecutionProvider":
        raise EngineBuildError(f"TensorRT provider not obtained (session runs on {info.provider}); are the TensorRT libraries on the library path?")
    seconds = time.perf_counter() - start
    ctx = Path(options.ep_context_path) if options.ep_context_path else None
    return EngineBuild(model, Path(options.engine_cache_dir), seconds, options, ctx if ctx and ctx.exists() else None)
