"""``Detector``: an exported edgedet model, ready to detect."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from .detections import Detections
from .letterbox import preprocess
from .metadata import ModelMetadata, from_props
from .postprocess import decode_raw, scale_boxes, select_detections
from .providers import CPUOptions, CUDAOptions, TensorRTOptions, create_session
from .sources import as_image

__all__ = ["Detector"]

ImageBatch = Sequence[np.ndarray]
ImageInput = Union[str, Path, np.ndarray, Any]  # Any: a PIL image


class Detector:
    """Run an edgedet ``.onnx`` model on BGR images.

    Everything about the model (input size, classes, pre-processing, output format) is read
    from its metadata; ``metadata=`` supplies it for a model exported elsewhere.

    Args:
        model_path: the ``.onnx`` file.
        providers: ``"auto"`` (TensorRT > CUDA > CoreML/DirectML/OpenVINO > CPU), a name
            (``tensorrt``, ``cuda``, ``cpu``, ...) or a list. ``detector.providers`` says what
            the session really got.
        conf, iou, max_det, class_agnostic: post-processing (scores are obj * cls; NMS is
            class-aware unless ``class_agnostic``). For ``nms`` models the graph's own
            settings apply first; ``conf`` and ``max_det`` can only tighten them.
        classes: keep only these class ids or names.
        threads: CPU intra-op threads (None: ONNX Runtime's default).
        device_id: GPU for CUDA/TensorRT.
        strict: make a provider that was asked for but not obtained an error.
        warmup: run one dummy inference now, so the first real call is not slow.
        max_batch: images per run for a dynamic-batch model.

    A Detector can be shared between threads: ONNX Runtime sessions are thread-safe and
    every call uses its own buffers.
    """

    def __init__(
        self,
        model_path: Union[str, Path],
        providers: Union[str, Sequence[str]] = "auto",
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        class_agnostic: bool = False,
        classes: Optional[Sequence[Union[int, str]]] = None,
        threads: Optional[int] = None,
        device_id: int = 0,
        strict: bool = False,
        warmup: bool = False,
        max_batch: int = 8,
        spinning: Optional[bool] = None,
        tensorrt: Optional[TensorRTOptions] = None,
        cuda: Optional[CUDAOptions] = None,
        metadata: Optional[ModelMetadata] = None,
    ) -> None:
        if not 0 <= conf <= 1 or not 0 <= iou <= 1:
            raise ValueError(f"conf and iou must be in [0, 1], got conf={conf}, iou={iou}")
        if max_det < 1 or max_batch < 1:
            raise ValueError("max_det and max_batch must be at least 1")
        self.model_path = str(model_path)
        if not Path(self.model_path).is_file():
            raise FileNotFoundError(f"{self.model_path}: no such model file")
        start = time.perf_counter()
        self.session, self.session_info = create_session(
            self.model_path, providers, strict=strict, device_id=device_id,
            cpu=CPUOptions(threads=threads, spinning=spinning), tensorrt=tensorrt, cuda=cuda,
            input_chw=(3, *metadata.input_size) if metadata else None,
        )
        self.session_seconds = time.perf_counter() - start
        if metadata is None:
            try:
                metadata = from_props(self.session.get_modelmeta().custom_metadata_map)
            except ValueError as e:
                raise ValueError(f"{self.model_path}: {e}") from None
        self.metadata = metadata
        dims = self.session.get_inputs()[0].shape
        graph_hw = tuple(dims[2:4]) if len(dims) == 4 else None
        if graph_hw and all(isinstance(d, int) for d in graph_hw) and graph_hw != tuple(metadata.input_size):
            raise ValueError(f"{self.model_path}: the metadata says input {metadata.input_size[0]}x"
                             f"{metadata.input_size[1]} but the graph takes {graph_hw[0]}x{graph_hw[1]}")
        self.conf, self.iou, self.max_det, self.class_agnostic = conf, iou, max_det, class_agnostic
        self.classes = self._class_filter(classes)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        batch_dim = self.session.get_inputs()[0].shape[0]
        self.batch = batch_dim if isinstance(batch_dim, int) else None  # None: dynamic
        self.max_batch = self.batch or max_batch
        self._check_outputs()
        if warmup:
            self.run(np.zeros((self.batch or 1, 3, *self.metadata.input_size), np.float32))

    @classmethod
    def from_file(cls, model_path: Union[str, Path], **kwargs: Any) -> "Detector":
        """A Detector configured entirely from the model file's metadata."""
        return cls(model_path, **kwargs)

    @property
    def providers(self) -> List[str]:
        """Providers the session runs on, in priority order (read back from the session)."""
        return list(self.session_info.obtained)

    @property
    def class_names(self) -> Tuple[str, ...]:
        return self.metadata.class_names

    @property
    def input_size(self) -> Tuple[int, int]:
        return self.metadata.input_size

    def _class_filter(self, classes):
        if classes is None:
            return None
        ids = []
        for c in classes:
            if isinstance(c, str) and not c.isdigit():
                if c not in self.metadata.class_names:
                    raise ValueError(f"unknown class {c!r}; the model's classes: {', '.join(self.metadata.class_names[:20])}"
                                     + (" ..." if len(self.metadata.class_names) > 20 else ""))
                ids.append(self.metadata.class_names.index(c))
            else:
                cid = int(c)
                if not 0 <= cid < self.metadata.num_classes:
                    raise ValueError(f"class id {cid} out of range 0..{self.metadata.num_classes - 1}")
                ids.append(cid)
        return tuple(ids)

    def _check_outputs(self) -> None:
        meta = self.metadata
        if meta.output_format == "nms":
            if self.output_names[:4] != ["num_dets", "boxes", "scores", "class_ids"]:
                raise ValueError(f"{self.model_path}: an nms model must output num_dets, boxes, scores, class_ids; "
                                 f"this one outputs {self.output_names}")
            return
        shape = self.session.get_outputs()[0].shape
        channels = shape[-1] if shape else None
        if isinstance(channels, int) and channels != 5 + meta.num_classes:
            raise ValueError(f"{self.model_path}: output has {channels} channels but the metadata lists "
                             f"{meta.num_classes} classes (expected {5 + meta.num_classes})")

    # The three stages, public so that pipelines (edgedet infer) can overlap them.
    def preprocess(self, image: np.ndarray, out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, float]:
        """BGR image (any size; gray and BGRA accepted) -> (float32 [3, H, W], ratio)."""
        m = self.metadata
        return preprocess(image, m.input_size, m.pad_value, m.color_order, m.mean, m.std, out=out)

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        """Run the network on a pre-processed float32 batch [B, 3, H, W]."""
        return self.session.run(self.output_names, {self.input_name: batch})

    def postprocess(
        self, outputs: Sequence[np.ndarray], ratios: Sequence[float], shapes: Sequence[Tuple[int, int]]
    ) -> List[Detections]:
        """Network outputs of a batch -> one Detections per image (``ratios`` and ``shapes``
        (H, W) of the images given, in order; padding rows of a fixed batch are ignored)."""
        m = self.metadata
        results = []
        for i, (ratio, shape) in enumerate(zip(ratios, shapes)):
            if m.output_format == "nms":
                n = int(outputs[0][i, 0])
                boxes, scores, class_ids = outputs[1][i, :n], outputs[2][i, :n], outputs[3][i, :n].astype(np.int64)
                keep = scores >= self.conf
                if self.classes is not None:
                    keep &= np.isin(class_ids, self.classes)
                boxes, scores, class_ids = boxes[keep][: self.max_det], scores[keep][: self.max_det], class_ids[keep][: self.max_det]
            else:
                pred = outputs[0][i]
                if m.output_format == "raw":
                    pred = decode_raw(pred, m.input_size, m.strides)
                boxes, scores, class_ids = select_detections(
                    pred, self.conf, self.iou, self.max_det, self.class_agnostic, self.classes
                )
            results.append(Detections(
                scale_boxes(np.asarray(boxes, np.float32), ratio, shape), np.asarray(scores, np.float32),
                np.asarray(class_ids, np.int64), m.class_names, (int(shape[0]), int(shape[1])),
            ))
        return results

    def detect_batch(self, images: ImageBatch) -> List[Detections]:
        """Detections for each image, running the network in batches when it allows."""
        results: List[Detections] = []
        h, w = self.metadata.input_size
        for start in range(0, len(images), self.max_batch):
            chunk = images[start:start + self.max_batch]
            size = self.batch or len(chunk)
            blob = np.zeros((size, 3, h, w), dtype=np.float32)  # a fixed batch is padded with zeros
            ratios = [self.preprocess(img, out=blob[j])[1] for j, img in enumerate(chunk)]
            shapes = [img.shape[:2] for img in chunk]
            results.extend(self.postprocess(self.run(blob), ratios, shapes))
        return results

    def __call__(self, images: Union[ImageInput, Sequence[ImageInput]]) -> Union[Detections, List[Detections]]:
        """``detector(image)`` -> Detections; ``detector([image, ...])`` -> list of Detections.

        An image is a path (str or Path), a numpy array (BGR, gray or BGRA; uint8, uint16, or
        float in 0..1 or 0..255) or a PIL image. A bad path is a ValueError naming the file."""
        if isinstance(images, (np.ndarray, str, Path)) or not isinstance(images, Sequence):
            return self.detect_batch([as_image(images)])[0]
        return self.detect_batch([as_image(image) for image in images])

    def __repr__(self) -> str:
        m = self.metadata
        return (f"Detector({self.model_path!r}, model={m.model_name}, input={m.input_size[0]}x{m.input_size[1]}, "
                f"format={m.output_format}, precision={m.precision}, provider={self.session_info.provider})")
