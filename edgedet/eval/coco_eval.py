"""COCO mAP with pycocotools, at the official evaluation settings (conf 0.001, class-aware
NMS at 0.65)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np

from edgedet.data.coco import CocoDetection, DatasetError
from edgedet.runtime.progress import ProgressCallback, report

__all__ = ["EVAL_CONF", "EVAL_IOU", "Metrics", "evaluate_predictions", "evaluate_detector", "evaluate_torch"]

EVAL_CONF = 0.001
EVAL_IOU = 0.65
EVAL_MAX_DET = 300


@dataclass
class Metrics:
    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float
    AR1: float
    AR10: float
    AR100: float
    images: int
    settings: Dict = field(default_factory=dict)
    # Images that could not be read, left out of the scores: (path, reason).
    failures: List = field(default_factory=list)

    def to_dict(self) -> Dict:
        return asdict(self)

    def table(self) -> str:
        from edgedet.tables import format_table

        keys = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")
        return format_table(keys, [[f"{getattr(self, k):.4f}" for k in keys]])


def evaluate_predictions(dataset: CocoDetection, results: List[Dict], image_ids: Optional[List[int]] = None) -> Metrics:
    """mAP of COCO results entries (``category_id`` = contiguous class index, mapped here to
    the dataset's category ids) on ``dataset`` (restricted to ``image_ids`` when given)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()  # the validated ground truth, not the raw file: dropped boxes are not scored
        gt.dataset = dataset.coco_ground_truth()
        gt.createIndex()
    mapped = [dict(r, category_id=dataset.category_ids[int(r["category_id"])]) for r in results]
    ids = image_ids if image_ids is not None else [im.id for im in dataset.images]
    if not mapped:
        return Metrics(*([0.0] * 9), images=len(ids))
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(mapped)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = [float(max(v, 0.0)) for v in ev.stats]
    return Metrics(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], images=len(ids))


def evaluate_detector(detector, dataset: CocoDetection, limit: Optional[int] = None,
                      progress: Optional[ProgressCallback] = None) -> Metrics:
    """mAP of an ``edgedet.runtime.Detector`` (set its conf/iou to the eval settings)."""
    results: List[Dict] = []
    ids = []
    failures = []
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for i in range(n):
        try:
            image, _, _ = dataset.load(i)
        except DatasetError as e:  # one unreadable image is reported and left out, not fatal
            failures.append((str(dataset.images[i].path), str(e).split(": ", 1)[-1]))
        else:
            results.extend(detector(image).to_coco(dataset.image_id(i)))
            ids.append(dataset.image_id(i))
        report(progress, "eval", i + 1, n, failed=len(failures))
    metrics = evaluate_predictions(dataset, results, ids)
    metrics.settings = {"conf": detector.conf, "iou": detector.iou, "class_agnostic": detector.class_agnostic,
                        "input_size": list(detector.input_size), "max_det": detector.max_det}
    metrics.failures = failures
    return metrics


def evaluate_torch(model, dataset: CocoDetection, input_size, limit: Optional[int] = None, conf: float = EVAL_CONF,
                   iou: float = EVAL_IOU, batch: int = 8, progress: Optional[ProgressCallback] = None) -> Metrics:
    """mAP of a PyTorch YOLOX model, pre-processed by the runtime's letterbox and
    post-processed by the runtime's selection (the same code the ONNX path uses)."""
    import torch

    from edgedet.runtime.detections import coco_result
    from edgedet.runtime.letterbox import preprocess
    from edgedet.runtime.postprocess import scale_boxes, select_detections

    was_training = model.training
    model.eval()
    n = len(dataset) if limit is None else min(limit, len(dataset))
    results, ids, failures = [], [], []
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, n, batch):
            idx, blobs, ratios, shapes = [], [], [], []
            for i in range(start, min(start + batch, n)):
                try:
                    image, _, _ = dataset.load(i)
                except DatasetError as e:
                    failures.append((str(dataset.images[i].path), str(e).split(": ", 1)[-1]))
                    report(progress, "eval", len(ids) + len(failures), n, failed=len(failures))
                    continue
                idx.append(i)
                blob, r = preprocess(image, input_size)
                blobs.append(blob)
                ratios.append(r)
                shapes.append(image.shape[:2])
            if not idx:
                continue
            out = model(torch.from_numpy(np.stack(blobs)).to(device)).float().cpu().numpy()
            for j, i in enumerate(idx):
                boxes, scores, classes = select_detections(out[j], conf, iou, EVAL_MAX_DET)
                boxes = scale_boxes(boxes, ratios[j], shapes[j])
                results.extend(coco_result(dataset.image_id(i), b, s, c) for b, s, c in zip(boxes, scores, classes))
                ids.append(dataset.image_id(i))
                report(progress, "eval", len(ids) + len(failures), n, failed=len(failures))
    model.train(was_training)
    metrics = evaluate_predictions(dataset, results, ids)
    metrics.settings = {"conf": conf, "iou": iou, "class_agnostic": False, "input_size": list(input_size),
                        "max_det": EVAL_MAX_DET}
    metrics.failures = failures
    return metrics
