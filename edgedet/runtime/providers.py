"""Execution-provider choice and options for ONNX Runtime sessions.

``auto`` tries TensorRT, then CUDA, then the platform's own providers that are present
(CoreML, DirectML, OpenVINO), then CPU. What a session really runs on is read back from
``session.get_providers()`` after creation: ``onnxruntime-gpu`` lists TensorRT and CUDA as
available even where their libraries are missing and then quietly runs on CPU.
"""

from __future__ import annotations

import difflib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .errors import first_line, ort_detail

__all__ = [
    "PROVIDER_NAMES",
    "AUTO_ORDER",
    "ProviderError",
    "TensorRTOptions",
    "CUDAOptions",
    "CPUOptions",
    "SessionInfo",
    "resolve_providers",
    "provider_options",
    "create_session",
    "ProviderProbe",
    "probe_providers",
    "cpu_session",
]

log = logging.getLogger(__name__)

# Short names users type -> ONNX Runtime provider names.
PROVIDER_NAMES: Dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_ALIASES = {"trt": "tensorrt", "dml": "directml", "gpu": "cuda"}
AUTO_ORDER: Tuple[str, ...] = ("tensorrt", "cuda", "coreml", "directml", "openvino", "cpu")


class ProviderError(RuntimeError):
    """A requested execution provider is unknown or could not be obtained."""


@dataclass(frozen=True)
class TensorRTOptions:
    """TensorRT provider settings (see ONNX Runtime's TensorRT EP documentation)."""

    fp16: bool = False
    int8: bool = False
    engine_cache_dir: Optional[str] = None  # engines are cached here when set
    timing_cache_dir: Optional[str] = None  # builder timing cache, shared across models
    workspace_bytes: Optional[int] = None
    builder_optimization_level: Optional[int] = None  # 0..5, TensorRT's default is 3
    int8_calibration_table: Optional[str] = None  # only for non-QDQ models
    # Batch profile for a dynamic batch axis: (min, opt, max).
    batch_profile: Optional[Tuple[int, int, int]] = None
    dump_ep_context_model: bool = False  # write an EP-context model embedding the engine
    ep_context_path: Optional[str] = None

    def __post_init__(self) -> None:
        if self.builder_optimization_level is not None and not 0 <= self.builder_optimization_level <= 5:
            raise ValueError(f"builder_optimization_level must be 0..5, got {self.builder_optimization_level}")
        if self.batch_profile is not None:
            lo, opt, hi = self.batch_profile
            if not 1 <= lo <= opt <= hi:
                raise ValueError(f"batch_profile must satisfy 1 <= min <= opt <= max, got {self.batch_profile}")
        if self.workspace_bytes is not None and self.workspace_bytes <= 0:
            raise ValueError(f"workspace_bytes must be positive, got {self.workspace_bytes}")


@dataclass(frozen=True)
class CUDAOptions:
    cudnn_conv_algo_search: str = "EXHAUSTIVE"  # EXHAUSTIVE | HEURISTIC | DEFAULT
    memory_limit_bytes: Optional[int] = None
    cuda_graph: bool = False  # needs fixed shapes and all nodes on CUDA

    def __post_init__(self) -> None:
        if self.cudnn_conv_algo_search not in ("EXHAUSTIVE", "HEURISTIC", "DEFAULT"):
            raise ValueError(f"cudnn_conv_algo_search must be EXHAUSTIVE, HEURISTIC or DEFAULT, got {self.cudnn_conv_algo_search!r}")


@dataclass(frozen=True)
class CPUOptions:
    threads: Optional[int] = None  # intra-op threads; None lets ONNX Runtime decide
    spinning: Optional[bool] = None  # busy-wait between ops; off saves CPU for other work


@dataclass
class SessionInfo:
    requested: List[str]  # ONNX Runtime names, in priority order
    obtained: List[str]  # what the session reports, in priority order
    warnings: List[str] = field(default_factory=list)

    @property
    def provider(self) -> str:
        """The main provider the session runs on."""
        return self.obtained[0] if self.obtained else "CPUExecutionProvider"


def _canonical(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in PROVIDER_NAMES:
        return PROVIDER_NAMES[key]
    for full in PROVIDER_NAMES.values():
        if key == full.lower():
            return full
    valid = ["auto"] + list(PROVIDER_NAMES)
    hint = difflib.get_close_matches(key, valid, n=1)
    raise ProviderError(
        f"unknown provider {name!r}; valid: {', '.join(valid)}" + (f". Did you mean {hint[0]!r}?" if hint else "")
    )


def resolve_providers(request: Union[str, Sequence[str]], available: Sequence[str]) -> List[str]:
    """The ONNX Runtime provider names to ask for, in priority order.

    ``request`` is ``"auto"``, a name (``tensorrt``, ``cuda``, ``cpu``, ...), a
    comma-separated list or a sequence of names. CPU is always appended last as the
    fallback. Names that ONNX Runtime does not list as available are dropped from ``auto``
    but kept for explicit requests (they then fail visibly at session creation).
    """
    names = request.split(",") if isinstance(request, str) else list(request)
    names = [n for n in (n.strip() for n in names) if n]
    if not names or names == ["auto"]:
        chosen = [PROVIDER_NAMES[k] for k in AUTO_ORDER if PROVIDER_NAMES[k] in available]
    else:
        if "auto" in [n.lower() for n in names]:
            raise ProviderError("'auto' cannot be combined with other providers")
        chosen = []
        for n in names:
            full = _canonical(n)
            if full not in chosen:
                chosen.append(full)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def _shape(input_name: str, batch: int, chw: Tuple[int, int, int]) -> str:
    return f"{input_name}:{batch}x{chw[0]}x{chw[1]}x{chw[2]}"


def provider_options(
    provider: str,
    device_id: int = 0,
    tensorrt: Optional[TensorRTOptions] = None,
    cuda: Optional[CUDAOptions] = None,
    input_name: str = "images",
    input_chw: Optional[Tuple[int, int, int]] = None,
) -> Dict[str, str]:
    """The provider-options dict ONNX Runtime takes for ``provider`` (string values)."""
    if provider == "TensorrtExecutionProvider":
        t = tensorrt or TensorRTOptions()
        opts: Dict[str, Any] = {"device_id": device_id, "trt_fp16_enable": t.fp16, "trt_int8_enable": t.int8}
        if t.engine_cache_dir:
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=t.engine_cache_dir)
        if t.timing_cache_dir:
            opts.update(trt_timing_cache_enable=True, trt_timing_cache_path=t.timing_cache_dir)
        if t.workspace_bytes:
            opts["trt_max_workspace_size"] = t.workspace_bytes
        if t.builder_optimization_level is not None:
            opts["trt_builder_optimization_level"] = t.builder_optimization_level
        if t.int8_calibration_table:
            opts.update(trt_int8_calibration_table_name=t.int8_calibration_table,
                        trt_int8_use_native_calibration_table=False)
        if t.batch_profile:
            if input_chw is None:
                raise ValueError("a TensorRT batch profile needs the input's C, H, W")
            lo, opt, hi = t.batch_profile
            opts.update(
                trt_profile_min_shapes=_shape(input_name, lo, input_chw),
                trt_profile_opt_shapes=_shape(input_name, opt, input_chw),
                trt_profile_max_shapes=_shape(input_name, hi, input_chw),
            )
        if t.dump_ep_context_model:
            opts["trt_dump_ep_context_model"] = True
            if t.ep_context_path:
                opts["trt_ep_context_file_path"] = t.ep_context_path
        return {k: (str(int(v)) if isinstance(v, bool) else str(v)) for k, v in opts.items()}
    if provider == "CUDAExecutionProvider":
        c = cuda or CUDAOptions()
        opts = {"device_id": str(device_id), "cudnn_conv_algo_search": c.cudnn_conv_algo_search}
        if c.memory_limit_bytes:
            opts["gpu_mem_limit"] = str(int(c.memory_limit_bytes))
        if c.cuda_graph:
            opts["enable_cuda_graph"] = "1"
        return opts
    if provider in ("DmlExecutionProvider", "OpenVINOExecutionProvider") and device_id:
        return {"device_id": str(device_id)}
    return {}


_warned: set = set()
_warn_lock = threading.Lock()


def _warn_once(message: str) -> None:
    with _warn_lock:
        if message in _warned:
            return
        _warned.add(message)
    log.warning(message)


LIBRARIES_MISSING = ("its libraries could not be loaded (CUDA, cuDNN or TensorRT missing or of another version); "
                     "-v shows ONNX Runtime's messages")


def create_session(
    model: Union[str, bytes],
    providers: Union[str, Sequence[str]] = "auto",
    *,
    strict: bool = False,
    device_id: int = 0,
    cpu: Optional[CPUOptions] = None,
    tensorrt: Optional[TensorRTOptions] = None,
    cuda: Optional[CUDAOptions] = None,
    input_chw: Optional[Tuple[int, int, int]] = None,
    session_options: Any = None,
):
    """Create an ``onnxruntime.InferenceSession`` and report which providers it got.

    An explicitly requested provider that the session did not obtain is a warning (once per
    message) that names what it got instead, or a ProviderError when ``strict``.
    Returns ``(session, SessionInfo)``.
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ProviderError(
            "onnxruntime is not installed: pip install 'edgedet[cpu]' (or 'edgedet[gpu]' for CUDA/TensorRT)"
        ) from e
    available = ort.get_available_providers()
    requested = resolve_providers(providers, available)
    is_auto = isinstance(providers, str) and providers.strip().lower() in ("", "auto")
    options = session_options or ort.SessionOptions()
    c = cpu or CPUOptions()
    if c.threads:
        options.intra_op_num_threads = c.threads
    if c.spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if c.spinning else "0")
    # ONNX Runtime's own messages (a GPU build without CUDA prints about ten lines of library-load
    # errors) only when edgedet logs at DEBUG (the CLI's -v): the warning below says what happened.
    quiet = not logging.getLogger("edgedet").isEnabledFor(logging.DEBUG)
    ort.set_default_logger_severity(4 if quiet else 2)
    options.log_severity_level = 4 if quiet else 2
    # Providers missing from this build are not passed on (ONNX Runtime would only emit a
    # UserWarning); they are reported below like any provider the session did not obtain.
    plist = [
        (p, provider_options(p, device_id, tensorrt, cuda, input_chw=input_chw)) for p in requested if p in available
    ]
    try:
        session = ort.InferenceSession(model, options, providers=plist)
    except Exception as e:
        # A file that is not an ONNX model fails the same way on every provider: say so, naming it.
        first = first_line(e)
        if any(k in first for k in ("INVALID_PROTOBUF", "No graph was found", "NO_SUCHFILE", "INVALID_GRAPH")):
            where = model if isinstance(model, str) else "the model"
            raise ValueError(f"{where}: not a usable ONNX model ({ort_detail(first)})") from None
        # A provider that is listed but broken can make creation fail outright: retry on
        # CPU unless strict, and say so.
        if strict or [p for p, _ in plist] == ["CPUExecutionProvider"]:
            raise
        _warn_once(f"session creation with {requested[0]} failed ({first}); running on CPUExecutionProvider")
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    info = SessionInfo(requested=requested, obtained=list(session.get_providers()))
    wanted = [p for p in requested if p != "CPUExecutionProvider"]
    if not is_auto:
        missing = [p for p in wanted if p not in info.obtained]
        if missing:
            why = [p for p in missing if p not in available]
            detail = (f"{', '.join(why)} not in this onnxruntime build (available: {', '.join(available)})"
                      if why else LIBRARIES_MISSING)
            message = f"requested {', '.join(missing)} but the session runs on {info.provider}: {detail}"
            if strict:
                raise ProviderError(message + "; strict mode allows no fallback")
            info.warnings.append(message)
            _warn_once(message)
    elif wanted and info.provider != wanted[0]:
        info.warnings.append(f"auto: {wanted[0]} is listed but the session runs on {info.provider}: {LIBRARIES_MISSING}")
        _warn_once(info.warnings[-1])
    return session, info


@dataclass
class ProviderProbe:
    """Whether one provider of this ONNX Runtime build can create a session here."""

    name: str
    usable: bool
    reason: str = ""  # why not, when it cannot


def probe_providers() -> List[ProviderProbe]:
    """Try each provider ONNX Runtime lists on a one-node model (``assets/probe.onnx``): a
    provider counts as usable when the session really runs on it (onnxruntime-gpu lists CUDA and
    TensorRT even where their libraries are missing, and then falls back to CPU)."""
    import onnxruntime as ort

    probe = str(Path(__file__).resolve().parents[1] / "assets" / "probe.onnx")
    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failing provider's load errors are what the reason says
    results = []
    for name in ort.get_available_providers():
        try:
            session = ort.InferenceSession(probe, options, providers=[name])
            got = session.get_providers()[0]
            results.append(ProviderProbe(name, got == name, "" if got == name else f"session fell back to {got}"))
        except Exception as e:  # noqa: BLE001 -- any failure is the answer
            results.append(ProviderProbe(name, False, first_line(e)))
    return results


def cpu_session(model: Union[str, bytes, Path], threads: int = 1, profile_prefix: Optional[str] = None):
    """A plain ONNX Runtime session on the CPU provider with ``threads`` intra-op threads and only
    errors logged: what parity checks, calibration and latency comparisons run models on. With
    ``profile_prefix`` ONNX Runtime's profiler records every run (``end_profiling()`` writes the trace)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(model) if isinstance(model, Path) else model, options,
                                providers=["CPUExecutionProvider"])
