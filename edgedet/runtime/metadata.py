"""The ONNX metadata contract: one definition, written at export and read by the runtime.

Each field is stored in the model's ``metadata_props`` as its own key ``edgedet.<field>``
with a JSON value. Reading never evaluates anything: values are parsed as JSON and every
field is type- and range-checked; a missing or malformed key raises MetadataError naming it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

__all__ = [
    "FORMAT_VERSION",
    "PREFIX",
    "OUTPUT_FORMATS",
    "PRECISIONS",
    "MetadataError",
    "NmsSettings",
    "ModelMetadata",
    "to_props",
    "from_props",
]

FORMAT_VERSION = 1
PREFIX = "edgedet."
OUTPUT_FORMATS = ("decoded", "raw", "nms")
PRECISIONS = ("fp32", "fp16", "int8")
MAX_VALUE_BYTES = 1 << 20  # a hostile file cannot make us parse more than this per key
MAX_CLASSES = 100_000
MAX_NAME_CHARS = 256


class MetadataError(ValueError):
    """Missing or malformed edgedet metadata; the message names the key."""


@dataclass(frozen=True)
class NmsSettings:
    """Settings baked into an end-to-end (``nms``) graph."""

    max_det: int
    conf: float
    iou: float
    class_agnostic: bool = False


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the runtime needs to run an exported model."""

    model_name: str
    input_size: Tuple[int, int]  # (H, W)
    class_names: Tuple[str, ...]
    strides: Tuple[int, ...] = (8, 16, 32)
    output_format: str = "decoded"  # decoded [B, N, 5+C] | raw [B, N, 5+C] | nms
    precision: str = "fp32"
    batch: Optional[int] = 1  # None for a dynamic batch axis
    color_order: str = "BGR"
    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # subtracted from 0..255 pixels
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: int = 114
    nms: Optional[NmsSettings] = None  # set for output_format "nms"
    gflops: Optional[float] = None  # per image, for achieved-throughput reports
    source_checkpoint_sha256: Optional[str] = None  # None: random weights
    edgedet_version: str = ""
    calibration: Optional[Dict[str, Any]] = None  # int8: how it was calibrated
    extra: Dict[str, Any] = field(default_factory=dict)  # free-form provenance (parity, ...)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def with_changes(self, **changes: Any) -> "ModelMetadata":
        return replace(self, **changes)


def to_props(meta: ModelMetadata) -> Dict[str, str]:
    """Encode metadata as ``{"edgedet.<field>": json}``, validating it first."""
    _validate(meta)
    raw = asdict(meta)
    props = {PREFIX + "format_version": json.dumps(FORMAT_VERSION)}
    for name, value in raw.items():
        props[PREFIX + name] = json.dumps(value, sort_keys=True, allow_nan=False)
    return props


def _type_error(key: str, expected: str, value: Any) -> MetadataError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return MetadataError(f"metadata key {PREFIX}{key}: expected {expected}, got {shown}")


def _int(key: str, value: Any, lo: int = 0, hi: int = 1 << 31) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _type_error(key, f"an integer in [{lo}, {hi}]", value)
    return value


def _float(key: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo <= value <= hi):
        raise _type_error(key, f"a number in [{lo}, {hi}]", value)
    return float(value)


def _str(key: str, value: Any, max_len: int = 4096) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise _type_error(key, f"a string of at most {max_len} characters", value)
    return value


def _choice(key: str, value: Any, choices: Tuple[str, ...]) -> str:
    if value not in choices:
        raise _type_error(key, "one of " + ", ".join(choices), value)
    return value


def _int_tuple(key: str, value: Any, length: Optional[int] = None, lo: int = 1, hi: int = 1 << 16) -> Tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length) or not value:
        raise _type_error(key, f"a list of {length or 'some'} integers", value)
    return tuple(_int(key, v, lo, hi) for v in value)


def _float_triple(key: str, value: Any) -> Tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise _type_error(key, "a list of 3 numbers", value)
    return tuple(_float(key, v, -1e6, 1e6) for v in value)  # type: ignore[return-value]


def _class_names(key: str, value: Any) -> Tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_CLASSES:
        raise _type_error(key, f"a list of 1 to {MAX_CLASSES} class names", value)
    return tuple(_str(key, v, MAX_NAME_CHARS) for v in value)


def _nms(key: str, value: Any) -> Optional[NmsSettings]:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"max_det", "conf", "iou", "class_agnostic"}:
        raise _type_error(key, "null or an object with max_det, conf, iou, class_agnostic", value)
    if not isinstance(value["class_agnostic"], bool):
        raise _type_error(key, "class_agnostic true or false", value["class_agnostic"])
    return NmsSettings(
        _int(key, value["max_det"], 1, 100_000),
        _float(key, value["conf"], 0.0, 1.0),
        _float(key, value["iou"], 0.0, 1.0),
        value["class_agnostic"],
    )


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda key, value: None if value is None else check(key, value)


def _dict(key: str, value: Any) -> Dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _type_error(key, "an object", value)
    return dict(value)


_FIELDS: Dict[str, Callable[[str, Any], Any]] = {
    "model_name": lambda k, v: _str(k, v, 256),
    "input_size": lambda k, v: _int_tuple(k, v, 2, 32, 1 << 14),
    "class_names": _class_names,
    "strides": lambda k, v: _int_tuple(k, v, None, 1, 1024),
    "output_format": lambda k, v: _choice(k, v, OUTPUT_FORMATS),
    "precision": lambda k, v: _choice(k, v, PRECISIONS),
    "batch": _optional(lambda k, v: _int(k, v, 1, 1 << 16)),
    "color_order": lambda k, v: _choice(k, v, ("BGR", "RGB")),
    "mean": _float_triple,
    "std": lambda k, v: tuple(
        _float(k, s, 1e-6, 1e6) for s in _float_triple(k, v)
    ),
    "pad_value": lambda k, v: _int(k, v, 0, 255),
    "nms": _nms,
    "gflops": _optional(lambda k, v: _float(k, v, 0.0, 1e6)),
    "source_checkpoint_sha256": _optional(lambda k, v: _str(k, v, 64)),
    "edgedet_version": lambda k, v: _str(k, v, 64),
    "calibration": _optional(_dict),
    "extra": _dict,
}


def _validate(meta: ModelMetadata) -> None:
    for name, check in _FIELDS.items():
        value = getattr(meta, name)
        if name == "nms" and value is not None:
            value = asdict(value)
        check(name, list(value) if isinstance(value, tuple) else value)
    if meta.output_format == "nms" and meta.nms is None:
        raise MetadataError(f"metadata key {PREFIX}nms: required when output_format is 'nms'")


def from_props(props: Mapping[str, str]) -> ModelMetadata:
    """Parse ``metadata_props`` (a str -> str mapping, e.g. ORT's ``custom_metadata_map``).

    Raises MetadataError naming the first missing or malformed key.
    """
    if PREFIX + "format_version" not in props:
        raise MetadataError(
            f"metadata key {PREFIX}format_version is missing: this model was not exported by edgedet "
            "(export it with `edgedet export`, or pass the settings explicitly)"
        )
    values = {}
    for name in ("format_version",) + tuple(_FIELDS):
        key = PREFIX + name
        if key not in props:
            raise MetadataError(f"metadata key {key} is missing")
        text = props[key]
        if not isinstance(text, str) or len(text.encode("utf-8", "replace")) > MAX_VALUE_BYTES:
            raise MetadataError(f"metadata key {key}: value is not a string of at most {MAX_VALUE_BYTES} bytes")
        try:
            values[name] = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise MetadataError(f"metadata key {key}: invalid JSON ({e})") from None
    version = values.pop("format_version")
    if version != FORMAT_VERSION:
        raise MetadataError(
            f"metadata key {PREFIX}format_version: this edgedet reads version {FORMAT_VERSION}, the model has {version!r}"
        )
    parsed = {name: check(name, values[name]) for name, check in _FIELDS.items()}
    meta = ModelMetadata(**parsed)
    if meta.output_format == "nms" and meta.nms is None:
        raise MetadataError(f"metadata key {PREFIX}nms: required when output_format is 'nms'")
    return meta
