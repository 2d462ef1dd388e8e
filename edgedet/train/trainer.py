"""The YOLOX training loop: data, SimOTA loss, SGD + warm cosine, EMA, checkpoints, eval."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import torch

from edgedet.data.augment import AugmentConfig
from edgedet.data.coco import CocoDetection, DatasetError
from edgedet.data.train_dataset import TrainDataset
from edgedet.models import build_model, get_spec, load_checkpoint
from edgedet.runtime.fileio import atomic_write_bytes

from .cpu_kernels import use_cpu_kernels
from .loss import LossParts, yolox_loss
from .progress import EpochEval, TrainProgress, TrainStep
from .schedule import ModelEMA, YoloxWarmCos, build_optimizer

__all__ = ["TrainConfig", "TrainError", "train", "train_step", "resolve_device", "resolve_precision", "strip_checkpoint",
           "save_checkpoint", "worker_init"]

log = logging.getLogger(__name__)


class TrainError(ValueError):
    """A training request that cannot run, with a one-line reason."""


@dataclass
class TrainConfig:
    data: str  # dataset root: annotations/{train,val}.json + images/{train,val}/
    model: str = "yolox-nano"
    out: str = "runs/train"
    epochs: int = 300
    batch: int = 16
    input_size: Optional[Tuple[int, int]] = None  # default: the model's test size
    workers: int = 2  # data-loading worker processes
    ckpt: Optional[str] = None  # initial weights (official COCO weights fine-tune to other classes)
    resume: bool = False  # continue from out/last.pth
    eval_interval: int = 10  # epochs between validations (and always after the last)
    eval_limit: Optional[int] = None  # validate on the first N val images only
    no_aug_epochs: int = 15  # last epochs without mosaic/mixup, with L1 loss
    warmup_epochs: int = 5
    basic_lr_per_img: float = 0.01 / 64  # lr = this * batch
    min_lr_ratio: float = 0.05
    weight_decay: float = 5e-4
    momentum: float = 0.9
    seed: int = 0
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    allow_emulated_bf16: bool = False  # bf16 on a CPU without AVX-512 BF16/AMX (slow software kernels)
    channels_last: bool = True
    cpu_kernels: bool = True  # CPU + channels-last: fused BatchNorm+SiLU, strided depthwise convs fp32 under bf16
    iters_per_epoch: Optional[int] = None  # cap (short runs and tests)
    threads: Optional[int] = None  # torch intra-op threads
    devices: int = 1  # processes for DistributedDataParallel (gloo on CPU, NCCL on GPUs)
    multiscale: bool = False  # every 10 iterations resize the batch to (input/32 +- 5) * 32, bilinear


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when CUDA is available, else the CPU; ``cpu``; ``cuda`` or
    ``cuda:N``. A device that cannot be used here is a TrainError saying why (never a silent CPU)."""
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise TrainError(f"--device {device}: CUDA is not available here (torch {torch.__version__} is {build}, "
                             f"and no GPU is visible); use --device cpu")
        index = int(name.split(":")[1]) if ":" in name and name.split(":")[1].isdigit() else 0
        if name not in ("cuda", f"cuda:{index}"):
            raise TrainError(f"--device {device}: use cuda or cuda:N")
        if index >= torch.cuda.device_count():
            raise TrainError(f"--device {device}: there are {torch.cuda.device_count()} CUDA devices (0.."
                             f"{torch.cuda.device_count() - 1})")
        return torch.device("cuda", index)
    raise TrainError(f"--device {device}: use auto, cpu, cuda or cuda:N")


def resolve_precision(precision: str, device: torch.device, allow_emulated_bf16: bool = False) -> str:
    """``auto``: fp16 AMP on CUDA; on CPUs bf16 autocast with AVX-512 BF16 or AMX, else fp32.

    A precision that cannot run well where asked is a TrainError: fp16 on a CPU (no fast fp16
    kernels there), bf16 on a GPU without bf16 support, bf16 on a CPU without AVX-512 BF16/AMX
    (software kernels, several times slower than fp32) unless ``allow_emulated_bf16``."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise TrainError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if _cpu_has_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise TrainError("--precision fp16 needs a CUDA device (CPUs have no fast fp16 kernels); use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainError(f"--precision bf16: {torch.cuda.get_device_name(device)} does not support bf16; use fp16")
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_bf16() and not allow_emulated_bf16:
        raise TrainError("--precision bf16: this CPU has no AVX-512 BF16 or AMX, so bf16 would run on emulated "
                         "kernels, several times slower than fp32; use fp32, or --allow-emulated-bf16 to study it")
    return precision


def _on_cpu(obj):
    """``obj`` (a state dict, possibly nested) with every tensor moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def save_checkpoint(path: Path, obj: Dict) -> None:
    """``torch.save`` of ``obj`` to ``path``, atomically (an interrupted write leaves the old file)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


MULTISCALE_INTERVAL = 10  # iterations between size changes, as upstream
MULTISCALE_RANGE = 5  # sizes from (S/32 - 5) * 32 to (S/32 + 5) * 32


def multiscale_size(base: Tuple[int, int], seed: int, step: int) -> Tuple[int, int]:
    """The training size for iteration ``step``: drawn every MULTISCALE_INTERVAL iterations
    from (S/32 +- 5) * 32 with the aspect ratio kept, deterministically from (seed, step)."""
    draw = step // MULTISCALE_INTERVAL
    k = int(torch.randint(-MULTISCALE_RANGE, MULTISCALE_RANGE + 1, (1,),
                          generator=torch.Generator().manual_seed(seed * 100003 + draw)))
    h = max(base[0] // 32 + k, 1) * 32
    return h, int(round(base[1] * h / base[0] / 32)) * 32


def multiscale_resize(images: torch.Tensor, targets: torch.Tensor, size: Tuple[int, int]):
    """Resize a batch [B, 3, H, W] bilinearly to ``size`` and scale target boxes (cx cy w h) alike."""
    h, w = images.shape[-2:]
    if (h, w) == tuple(size):
        return images, targets
    images = torch.nn.functional.interpolate(images, size=size, mode="bilinear", align_corners=False)
    targets = targets.clone()
    targets[..., [1, 3]] *= size[1] / w
    targets[..., [2, 4]] *= size[0] / h
    return images, targets


def _digest(model: torch.nn.Module) -> str:
    """Hash of the parameters (not the BN running statistics, which DDP lets each rank
    update from its own data between the broadcasts at each forward)."""
    import hashlib

    h = hashlib.sha256()
    for key, value in model.named_parameters():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def worker_init(_worker_id: int) -> None:
    """DataLoader worker set-up: one OpenCV and one torch thread (the main process has the cores)."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    backend = "nccl" if resolve_device(cfg.device).type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        result = train(dataclasses.replace(cfg, devices=1))
        if rank == 0:
            (Path(cfg.out) / "summary.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _launch_from_env(device: str) -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR in the environment):
    NCCL when training on CUDA, gloo on CPUs."""
    import torch.distributed as dist

    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if resolve_device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend)
    return True


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor,
               strides: Sequence[int], precision: str = "fp32", channels_last: bool = False,
               use_l1: bool = False, scaler: Optional["torch.amp.GradScaler"] = None) -> LossParts:
    """One optimisation step: forward under autocast (bf16 or fp16, on the images' device) unless
    ``precision`` is fp32, SimOTA and the losses in fp32, backward, SGD. The weights stay fp32;
    with fp16 a ``scaler`` (GradScaler) scales the loss so small gradients do not underflow."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    with torch.autocast(images.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        levels = net(images)
    parts = yolox_loss([lv.float() for lv in levels], targets, strides, use_l1=use_l1)
    total = float(parts.total.detach())
    if not math.isfinite(total):
        raise TrainError(f"loss became {total}")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(parts.total).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        parts.total.backward()
        optimizer.step()
    return parts


def train(cfg: TrainConfig, progress: Optional[TrainProgress] = None) -> Dict:
    """Train (or resume) and return a summary with the last validation metrics.

    Writes ``out/last.pth`` every epoch and ``out/best.pth`` at the best validation AP,
    both in the official layout (``"model"`` holds the EMA weights), atomically, and
    ``out/train_log.jsonl`` with every logged step.

    ``cfg.devices > 1`` spawns that many processes on this machine and trains with
    DistributedDataParallel (the batch is split between them; rank 0 logs, evaluates and
    writes checkpoints). Under ``torchrun`` the process group comes from the environment.
    """
    import torch.distributed as dist

    from edgedet.eval import evaluate_torch

    if cfg.devices > 1:
        if cfg.batch % cfg.devices:
            raise TrainError(f"batch {cfg.batch} must be divisible by --devices {cfg.devices}")
        first = resolve_device(cfg.device)
        if first.type == "cuda" and cfg.devices > torch.cuda.device_count():
            raise TrainError(f"--devices {cfg.devices}: only {torch.cuda.device_count()} CUDA devices here")
        resolve_precision(cfg.precision, first, cfg.allow_emulated_bf16)  # refuse before spawning
        import torch.multiprocessing as mp

        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        mp.spawn(_ddp_worker, args=(cfg.devices, _free_port(), cfg), nprocs=cfg.devices, join=True)
        return json.loads((Path(cfg.out) / "summary.json").read_text())
    joined = _launch_from_env(cfg.device)
    distributed = dist.is_initialized()
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    if distributed and cfg.batch % world:
        raise TrainError(f"batch {cfg.batch} must be divisible by the world size {world}")
    main_process = rank == 0
    if not main_process:
        progress = None

    out = Path(cfg.out)
    try:
        spec = get_spec(cfg.model)
    except ValueError as e:
        raise TrainError(str(e)) from None
    try:
        train_set = CocoDetection.from_dir(cfg.data, "train")
        val_set = CocoDetection.from_dir(cfg.data, "val")
    except DatasetError as e:
        raise TrainError(str(e)) from None
    if train_set.class_names != val_set.class_names:
        raise TrainError(f"{cfg.data}: train and val splits have different categories")
    if cfg.batch > len(train_set):
        raise TrainError(f"batch size {cfg.batch} is larger than the training set ({len(train_set)} images)")
    if cfg.epochs < 1:
        raise TrainError("epochs must be at least 1")
    size = tuple(cfg.input_size or spec.test_size)
    if size[0] % 32 or size[1] % 32:
        raise TrainError(f"input size {size} must be multiples of 32")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if distributed and device.type == "cuda":  # torchrun or --devices: one GPU per rank
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
    precision = resolve_precision(cfg.precision, device, cfg.allow_emulated_bf16)
    if main_process:
        log.info("device %s, precision %s, memory format %s%s", device,
                 {"bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler"}.get(precision, "fp32"),
                 "channels_last" if cfg.channels_last else "contiguous (NCHW)",
                 f", {world} processes ({'nccl' if device.type == 'cuda' else 'gloo'})" if distributed else "")
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    model = build_model(spec.name, num_classes=train_set.num_classes)
    if cfg.ckpt and not cfg.resume:
        result = load_checkpoint(model, cfg.ckpt)
        if result.class_predictions_reinitialised:
            log.info("fine-tuning: class predictions re-initialised for %d classes", train_set.num_classes)
    model.head.predictions_in_fp32 = precision in ("bf16", "fp16")
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.cpu_kernels and device.type == "cpu" and cfg.channels_last:  # the fused kernel wants channels-last
        kernels = use_cpu_kernels(model)
        if main_process:
            log.info("CPU kernels: %s", kernels.describe())
    lr = cfg.basic_lr_per_img * cfg.batch
    optimizer = build_optimizer(model, lr, cfg.momentum, cfg.weight_decay)
    ema = ModelEMA(model)
    net = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        # broadcasts rank 0's weights, averages gradients
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    start_epoch, best_ap, history = 0, -1.0, []
    last = out / "last.pth"
    if cfg.resume:
        if not last.is_file():
            raise TrainError(f"{last}: nothing to resume")
        state = torch.load(last, map_location="cpu", weights_only=True)
        if state.get("num_classes") != train_set.num_classes:
            raise TrainError(f"{last}: checkpoint has {state.get('num_classes')} classes, the dataset {train_set.num_classes}")
        model.load_state_dict(state["train_model"])
        ema.ema.load_state_dict(state["model"])
        ema.updates = int(state["ema_updates"])
        optimizer.load_state_dict(state["optimizer"])  # moves its buffers to the parameters' device
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best_ap = int(state["start_epoch"]), float(state["best_ap"])
        log.info("resumed from %s at epoch %d", last, start_epoch + 1)

    dataset = TrainDataset(train_set, size, AugmentConfig.for_model(spec.name), seed=cfg.seed)
    iters = len(train_set) // cfg.batch
    if cfg.iters_per_epoch:
        iters = min(iters, cfg.iters_per_epoch)
    no_aug = min(cfg.no_aug_epochs, cfg.epochs)
    if no_aug == cfg.epochs and main_process:
        # the official schedule holds the minimum lr through the no-aug epochs
        log.warning("--no-aug-epochs %d >= --epochs %d: the whole run is without mosaic/mixup, at the minimum "
                    "learning rate (%g)", cfg.no_aug_epochs, cfg.epochs, cfg.min_lr_ratio * lr)
    schedule = YoloxWarmCos(lr, cfg.epochs * iters, min(cfg.warmup_epochs, cfg.epochs) * iters, no_aug * iters, cfg.min_lr_ratio)
    log_file = (out / ("train_log.jsonl" if main_process else f"train_log.rank{rank}.jsonl")).open("a", encoding="utf-8")
    metrics = None
    config_record = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    try:
        for epoch in range(start_epoch, cfg.epochs):
            augment = epoch < cfg.epochs - no_aug
            dataset.set_epoch(epoch, mosaic_enabled=augment)
            generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
            sampler = None
            if distributed:
                sampler = torch.utils.data.DistributedSampler(dataset, world, rank, shuffle=True, seed=cfg.seed,
                                                              drop_last=True)
                sampler.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=cfg.batch // world, shuffle=sampler is None, sampler=sampler,
                generator=generator if sampler is None else None, num_workers=cfg.workers,
                drop_last=True, worker_init_fn=worker_init if cfg.workers else None,
                persistent_workers=False, prefetch_factor=4 if cfg.workers else None,
                pin_memory=device.type == "cuda",
                # Spawned, not forked: a worker forked after evaluation has run OpenCV's and
                # torch's thread pools can inherit a held lock and hang.
                multiprocessing_context="spawn" if cfg.workers else None,
            )
            model.train()
            start = time.perf_counter()
            for it, (images, targets) in enumerate(loader):
                if it >= iters:
                    break
                global_it = epoch * iters + it
                for group in optimizer.param_groups:
                    group["lr"] = schedule(global_it)
                images = images.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                if cfg.multiscale:
                    images, targets = multiscale_resize(images, targets, multiscale_size(size, cfg.seed, global_it))
                try:
                    parts = train_step(net, optimizer, images, targets, spec.strides, precision=precision,
                                       channels_last=cfg.channels_last, use_l1=not augment, scaler=scaler)
                except TrainError as e:
                    raise TrainError(f"{e} at epoch {epoch + 1}, iteration {it + 1}") from None
                ema.update(model)
                step = TrainStep(epoch + 1, cfg.epochs, it + 1, iters, cfg.batch, schedule(global_it),
                                 (it + 1) * cfg.batch / (time.perf_counter() - start), parts.as_floats())
                log_file.write(json.dumps(step.to_record()) + "\n")
                log_file.flush()
                if progress:
                    progress(step)
            curr_ap = None
            if distributed:  # each rank logs a digest of its weights: they must stay identical
                log_file.write(json.dumps({"epoch": epoch + 1, "rank": rank, "weights_sha256": _digest(model)}) + "\n")
                log_file.flush()
            if not main_process:
                dist.barrier()  # rank 0 evaluates and writes the checkpoint
                continue
            if (epoch + 1) % cfg.eval_interval == 0 or epoch + 1 == cfg.epochs:
                metrics = evaluate_torch(ema.ema, val_set, size, limit=cfg.eval_limit)
                curr_ap = metrics.AP
                history.append({"epoch": epoch + 1, **{k: v for k, v in metrics.to_dict().items() if k != "settings"}})
                log_file.write(json.dumps({"epoch": epoch + 1, "val": metrics.to_dict()}) + "\n")
                log_file.flush()
                if progress:
                    progress(EpochEval(epoch + 1, cfg.epochs, metrics))
            state = {
                # CPU tensors: a checkpoint trained on a GPU loads on a CPU-only machine as it is
                "model": _on_cpu(ema.ema.state_dict()), "train_model": _on_cpu(model.state_dict()),
                "optimizer": _on_cpu(optimizer.state_dict()),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "start_epoch": epoch + 1, "best_ap": max(best_ap, curr_ap if curr_ap is not None else -1.0),
                "curr_ap": curr_ap if curr_ap is not None else -1.0, "ema_updates": ema.updates,
                "model_name": spec.name, "num_classes": train_set.num_classes,
                "class_names": list(train_set.class_names), "input_size": list(size), "config": config_record,
            }
            save_checkpoint(last, state)
            if curr_ap is not None and curr_ap > best_ap:
                best_ap = curr_ap
                save_checkpoint(out / "best.pth", state)
            if distributed:
                dist.barrier()
    finally:
        log_file.close()
        if joined:
            dist.destroy_process_group()
    if distributed and not main_process:
        return {"out": str(out), "rank": rank}
    return {"out": str(out), "best_ap": best_ap, "metrics": metrics.to_dict() if metrics else None, "history": history,
            "precision": precision, "epochs": cfg.epochs}


def strip_checkpoint(src: Path, dst: Path, half: bool = False, **extra) -> Path:
    """Write a deployable copy of a training checkpoint: the EMA weights under ``"model"``
    (the official layout) with the model name, classes and input size, without the
    optimizer and training-only state. ``half`` stores the weights as float16 (half the size;
    ``load_checkpoint`` copies them into the fp32 model), BatchNorm's running statistics kept
    float32 (small variances lose their precision in float16). ``extra`` entries (e.g. the
    command that made it) are stored beside them."""
    state = torch.load(src, map_location="cpu", weights_only=True)
    keep = {k: state[k] for k in ("model", "model_name", "num_classes", "class_names", "input_size", "start_epoch",
                                  "best_ap", "curr_ap") if k in state}
    if half:
        keep["model"] = {k: (v.half() if v.is_floating_point() and not k.endswith(("running_mean", "running_var"))
                             else v) for k, v in keep["model"].items()}
    keep.update(extra)
    save_checkpoint(Path(dst), keep)
    return Path(dst)
