"""`edgedet qat`: quantization-aware fine-tuning from a checkpoint to an INT8 ONNX file.

Export the checkpoint (the fp32 reference), calibrate on the images ``quantize`` would use,
fine-tune through fake quantization placed where the INT8 graph quantizes (``train.qat``), save
the fine-tuned weights as an ordinary checkpoint, export them and quantize them with the same
calibration images and method, and (with evaluation data) measure the INT8 file against the fp32
reference.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

__all__ = ["QatResult", "run_qat"]

log = logging.getLogger(__name__)


@dataclass
class QatResult:
    checkpoint: Path  # the fine-tuned weights, loadable like any checkpoint
    fp32: Path  # the reference: the original checkpoint exported
    int8: Path  # the fine-tuned weights exported and quantized
    steps: int
    losses: Tuple[float, float]  # mean loss of the first and the last tenth of the steps
    seconds: float
    quantized: object  # calibration.QuantizeResult of the int8 file
    ap: Optional[Dict] = None  # {"fp32": {...}, "int8": {...}, "ap_drop"} with evaluation data
    settings: Dict = field(default_factory=dict)

    def report(self) -> Dict:
        return {"checkpoint": str(self.checkpoint), "fp32": str(self.fp32), "int8": str(self.int8),
                "steps": self.steps, "loss_first_last": list(self.losses), "seconds": round(self.seconds, 1),
                "settings": self.settings, "quantize": self.quantized.report(), **({"ap": self.ap} if self.ap else {})}


def run_qat(model_name: Optional[str], ckpt: Union[str, Path], data: Union[str, Path], out_dir: Union[str, Path], *,
            input_size: Optional[Tuple[int, int]] = None, calib: Optional[Union[str, Path]] = None,
            num_images: int = 200, seed: int = 0, epochs: float = 1.0, batch: int = 16,
            lr_per_image: float = 1e-4 / 16, frozen_fraction: float = 0.25, channel_scales: bool = True,
            workers: int = 1, threads: Optional[int] = None, eval_data: Optional[Union[str, Path]] = None,
            eval_limit: Optional[int] = None, cache_dir: Optional[Path] = None,
            echo: Callable[[str], None] = log.info, progress=None) -> QatResult:
    """Fine-tune ``ckpt`` on ``data``'s train split through INT8 fake quantization and write
    ``OUT/qat.pth``, ``OUT/fp32.onnx`` (the original weights) and ``OUT/int8.onnx``. Calibration
    images come from ``calib`` (default: ``data``), chosen as ``quantize`` chooses them
    (``num_images``, ``seed``); ``channel_scales`` as in ``quantize`` (False: every activation per
    tensor, the faster INT8 file for depthwise models). Raises ValueError (one line) for a request
    that cannot run."""
    import torch

    from edgedet.calibration import CalibrationSet, quantize_model
    from edgedet.calibration.quantize import evaluate_pair
    from edgedet.data.augment import AugmentConfig
    from edgedet.data.coco import CocoDetection, DatasetError
    from edgedet.data.train_dataset import TrainDataset
    from edgedet.exporters import export_model
    from edgedet.models import build_model, get_spec, load_checkpoint, read_checkpoint
    from edgedet.runtime.fileio import check_writable
    from edgedet.train.qat import finetune_qat, prepare_qat, qat_state_dict
    from edgedet.train.trainer import save_checkpoint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_writable(out)
    try:
        train_set = CocoDetection.from_dir(data, "train")
    except DatasetError as e:
        raise ValueError(str(e)) from None
    _, extra = read_checkpoint(ckpt)
    name = model_name or extra.get("model_name")
    if not name:
        raise ValueError(f"{ckpt}: the checkpoint does not say its model; pass -m/--model")
    spec = get_spec(name)
    size = tuple(input_size or extra.get("input_size") or spec.test_size)
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()

    echo(f"[1/4] export the fp32 reference at {size[0]}x{size[1]}")
    fp32 = export_model(spec.name, out / "fp32.onnx", ckpt=ckpt, input_size=size, echo=lambda _m: None)
    calibration = CalibrationSet(calib or data, fp32.metadata, num_images=num_images, seed=seed, cache_dir=cache_dir)

    echo(f"[2/4] fine-tune through INT8 fake quantization: {epochs:g} epoch(s) of {len(train_set)} images, "
         f"ranges from {len(calibration)} calibration images")
    model = build_model(spec.name, num_classes=train_set.num_classes)
    load_checkpoint(model, ckpt)
    prepare_qat(model.eval(), torch.zeros(1, 3, *size), channel_scales=channel_scales)
    dataset = TrainDataset(train_set, size, AugmentConfig.for_model(spec.name), seed=seed)
    losses = finetune_qat(model, dataset, spec.strides, torch.from_numpy(calibration.tensors), epochs=epochs,
                          batch=batch, lr_per_image=lr_per_image, frozen_fraction=frozen_fraction, workers=workers,
                          seed=seed, progress=progress)
    settings = {"epochs": epochs, "batch": batch, "lr_per_image": lr_per_image, "frozen_fraction": frozen_fraction,
                "calibration_images": len(calibration), "channel_scales": channel_scales, "seed": seed,
                "source_checkpoint": Path(ckpt).name}
    checkpoint = out / "qat.pth"
    save_checkpoint(checkpoint, {"model": qat_state_dict(model), "model_name": spec.name,
                                 "num_classes": train_set.num_classes, "class_names": list(train_set.class_names),
                                 "input_size": list(size), "qat": settings})

    echo("[3/4] export the fine-tuned weights and quantize them (same calibration images and method)")
    tuned = export_model(spec.name, out / "qat-fp32.onnx", ckpt=checkpoint, input_size=size, echo=lambda _m: None)
    quantized = quantize_model(tuned.path, calib or data, out / "int8.onnx", num_images=num_images, seed=seed,
                               channel_scales=channel_scales, cache_dir=cache_dir)
    tenth = max(1, len(losses) // 10)
    result = QatResult(checkpoint, fp32.path, quantized.path, len(losses),
                       (sum(losses[:tenth]) / tenth, sum(losses[-tenth:]) / tenth), 0.0, quantized, settings=settings)
    if eval_data is not None:
        echo(f"[4/4] evaluate the fp32 reference and the INT8 file on {eval_data}")
        result.ap = evaluate_pair(fp32.path, quantized.path, eval_data, limit=eval_limit,
                                  latency_ms=quantized.latency_ms)
    result.seconds = time.perf_counter() - started
    return result
