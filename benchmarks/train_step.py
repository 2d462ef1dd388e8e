"""Training speed: edgedet's training step (forward, SimOTA, loss, backward, SGD; no data loading)
at fp32, bf16 autocast, bf16 autocast + channels-last and that with the CPU kernels (what
`--precision auto` trains with here), timed interleaved on one real augmented
batch, and optionally the loss curves of short real runs of chosen settings over several seeds.

    python benchmarks/train_step.py --data data/synth --threads 2 --official
    python benchmarks/train_step.py --data data/synth --cases "" --curve-steps 300 \
        --curve-settings fp32,bf16+channels-last,auto --seeds 0,1,2 --png docs/train_loss_bf16.png
    python benchmarks/train_step.py --data data/synth --cases "" --loader-workers 1,2

The fp32 step with contiguous (NCHW) tensors is the official code's step: the same model, the
same loss and the same optimizer, so the ratios to it are the speed-ups over the official recipe.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (label, precision, channels_last, cpu_kernels); the last is what `--precision auto` trains with here
AUTO = "bf16+channels-last+cpu-kernels"
SETTINGS = (("fp32", "fp32", False, False), ("bf16", "bf16", False, False),
            ("bf16+channels-last", "bf16", True, False), (AUTO, "bf16", True, True))
# Loss-curve runs are named "<setting> seed <n>"
SEED = " seed "


def augmented_dataset(data: Path, model_name: str, size: int):
    """The training split of ``data`` with the model's training augmentation (mosaic on), seed 0."""
    from edgedet.data.augment import AugmentConfig
    from edgedet.data.coco import CocoDetection
    from edgedet.data.train_dataset import TrainDataset
    from edgedet.models import get_spec

    dataset = TrainDataset(CocoDetection.from_dir(data, "train"), (size, size),
                           AugmentConfig.for_model(get_spec(model_name).name), seed=0)
    dataset.set_epoch(0, mosaic_enabled=True)
    return dataset


OFFICIAL = "official yolox 0.3.0"


def official_model(spec, num_classes: int, state_dict):
    """The official YOLOX 0.3.0 model (``pip install --no-build-isolation yolox==0.3.0``), built from
    that package and given ``state_dict`` (same key names as edgedet's: loaded with strict=True).
    Its ``yolox.utils`` imports torchvision for NMS, which training never calls: a stand-in module
    is put in its place when torchvision is not installed (it is not a dependency of edgedet)."""
    import importlib.util
    import types

    import torch

    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        stub = types.ModuleType("torchvision")
        stub.ops = types.SimpleNamespace(nms=None, batched_nms=None)
        sys.modules.setdefault("torchvision", stub)
    from yolox.models import YOLOX, YOLOPAFPN, YOLOXHead

    backbone = YOLOPAFPN(spec.depth, spec.width, in_channels=list(spec.in_channels), depthwise=spec.depthwise,
                         act=spec.act)
    head = YOLOXHead(num_classes, spec.width, in_channels=list(spec.in_channels), depthwise=spec.depthwise, act=spec.act)
    model = YOLOX(backbone, head)
    for m in model.modules():  # the official exp's init: BN eps 1e-3, momentum 0.03
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
    model.load_state_dict(state_dict, strict=True)
    return model.train()


def official_step(model, optimizer, images, targets) -> float:
    """The official training step: the model returns its loss dict in train mode (its SimOTA and
    losses), then backward and SGD, fp32 NCHW (its AMP is CUDA-only)."""
    loss = model(images, targets)["total_loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def time_training_step(model_name: str, batch: int, size: int, data: Path, steps: int, warmup: int,
                       official: bool = False) -> Dict:
    import torch

    from edgedet.models import build_model, get_spec
    from edgedet.train.cpu_kernels import use_cpu_kernels
    from edgedet.train.schedule import build_optimizer
    from edgedet.train.trainer import resolve_precision, train_step

    spec = get_spec(model_name)
    dataset = augmented_dataset(data, spec.name, size)
    coco = dataset.coco
    images, targets = next(iter(torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False)))
    torch.manual_seed(0)
    base = build_model(spec.name, num_classes=coco.num_classes)
    runs = {}
    for label, precision, channels_last, cpu_kernels in SETTINGS:
        model = copy.deepcopy(base).train()
        model.head.predictions_in_fp32 = precision == "bf16"  # as the trainer does
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cpu_kernels:
            use_cpu_kernels(model)  # built before timing starts
        runs[label] = (model, build_optimizer(model, lr=1e-4), precision, channels_last)
    if official:
        model = official_model(spec, coco.num_classes, copy.deepcopy(base.state_dict()))
        runs[OFFICIAL] = (model, build_optimizer(model, lr=1e-4), None, False)
    seconds: Dict[str, List[float]] = {label: [] for label in runs}
    first_loss: Dict[str, float] = {}
    for step in range(warmup + steps):  # interleaved: A B C A B C ...
        for label, (model, optimizer, precision, channels_last) in runs.items():
            start = time.perf_counter()
            if label == OFFICIAL:
                loss = official_step(model, optimizer, images, targets)
            else:
                loss = float(train_step(model, optimizer, images, targets, spec.strides, precision=precision,
                                        channels_last=channels_last).total.detach())
            if step >= warmup:
                seconds[label].append(time.perf_counter() - start)
            first_loss.setdefault(label, round(loss, 4))
    auto = AUTO if resolve_precision("auto", torch.device("cpu")) == "bf16" else "fp32"
    result = {"model": spec.name, "batch": batch, "input_size": size, "steps": steps, "auto": auto,
              "loss_at_step_0": first_loss}
    reference = OFFICIAL if official else "fp32"
    base_median = statistics.median(seconds[reference])
    for label, times in seconds.items():
        median = statistics.median(times)
        result[label] = {"s_per_step": round(median, 4), "images_per_s": round(batch / median, 2),
                         f"speedup_vs_{'official' if official else 'fp32'}": round(base_median / median, 2)}
    return result


def time_data_loading(data: Path, model_name: str, batch: int, size: int, workers: int, batches: int) -> Dict:
    """Images/s of the augmented data pipeline alone (Mosaic, MixUp, HSV, flip, affine)."""
    import torch

    dataset = augmented_dataset(data, model_name, size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                         multiprocessing_context="spawn" if workers else None)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - start
    return {"model": model_name, "batch": batch, "input_size": size, "workers": workers,
            "images_per_s": round(batches * batch / seconds, 1)}


def loss_curves(data: Path, steps: int, batch: int, size: int, lr_per_image: float, work: Path,
                settings: Sequence[str] = ("fp32", AUTO), seeds: Sequence[int] = (0,)) -> Dict:
    """Real runs of ``steps`` steps (augmentation on, one loader worker) of each setting in ``settings``
    with each seed in ``seeds`` (a seed sets the weights' initialisation, augmentation and data order).
    Returns their per-step total losses, keyed ``"<setting> seed <n>"``."""
    from edgedet.data.coco import CocoDetection
    from edgedet.train import TrainConfig, TrainStep, train

    per_epoch = min(100, steps, len(CocoDetection.from_dir(data, "train")) // batch)
    by_label = {setting[0]: setting for setting in SETTINGS}
    curves = {}
    for seed in seeds:
        for name in settings:
            label, precision, channels_last, cpu_kernels = by_label[name]
            run = f"{label}{SEED}{seed}"
            cfg = TrainConfig(data=str(data), model="yolox-nano", out=str(work / run.replace(" ", "-")),
                              epochs=-(-steps // per_epoch), batch=batch, input_size=(size, size), workers=1,
                              eval_interval=10_000, eval_limit=2, no_aug_epochs=0, warmup_epochs=1,
                              basic_lr_per_img=lr_per_image, precision=precision, channels_last=channels_last,
                              cpu_kernels=cpu_kernels,
                              allow_emulated_bf16=True,  # the loss study runs bf16 on any CPU
                              iters_per_epoch=per_epoch, threads=None, seed=seed)
            losses: List[float] = []
            start = time.perf_counter()
            train(cfg, progress=lambda e: losses.append(e.losses["loss"]) if isinstance(e, TrainStep) else None)
            curves[run] = {"loss": losses[:steps], "seconds": round(time.perf_counter() - start, 1)}
            print(f"{run}: {len(curves[run]['loss'])} steps in {curves[run]['seconds']} s", flush=True)
    return curves


def summarise_curves(curves: Dict, window: int = 100) -> Dict:
    """Mean total loss over the last ``window`` steps of each run; per setting, the mean and spread of
    those over seeds; each setting's difference to fp32, per seed and over seeds, set against fp32's
    own spread over seeds (the noise a different seed brings)."""
    window = min(window, *(len(c["loss"]) for c in curves.values()))
    means = {run: statistics.fmean(curve["loss"][-window:]) for run, curve in curves.items()}
    by_setting: Dict[str, Dict[int, float]] = {}
    for run, mean in means.items():
        label, seed = run.rsplit(SEED, 1)
        by_setting.setdefault(label, {})[int(seed)] = mean
    summary = {"window": f"last {window} steps", "means": {k: round(v, 4) for k, v in means.items()},
               "settings": {}}
    fp32 = by_setting.get("fp32", {})
    for label, per_seed in by_setting.items():
        values = list(per_seed.values())
        entry = {"mean_over_seeds": round(statistics.fmean(values), 4), "seeds": len(values)}
        if len(values) > 1:
            entry["seed_std"] = round(statistics.stdev(values), 4)
            entry["seed_range"] = [round(min(values), 4), round(max(values), 4)]
        if label != "fp32" and fp32:
            paired = [per_seed[seed] - fp32[seed] for seed in per_seed if seed in fp32]
            entry["minus_fp32_per_seed"] = [round(d, 4) for d in paired]
            entry["minus_fp32_mean"] = round(statistics.fmean(values) - statistics.fmean(fp32.values()), 4)
        summary["settings"][label] = entry
    return summary


def plot_curves(curves: Dict, png: Path, smooth: int = 20) -> None:
    """Every run's loss, smoothed over ``smooth`` steps: one colour per setting, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colours: Dict[str, str] = {}
    for run, curve in curves.items():
        label = run.rsplit(SEED, 1)[0]
        loss = curve["loss"]
        averaged = [statistics.fmean(loss[max(0, i - smooth + 1): i + 1]) for i in range(len(loss))]
        first = label not in colours
        colours.setdefault(label, f"C{len(colours)}")
        ax.plot(range(1, len(loss) + 1), averaged, color=colours[label], linewidth=0.9, alpha=0.85,
                label=f"{label} ({smooth}-step mean, each seed)" if first else None)
    ax.set_xlabel("step")
    ax.set_ylabel("total loss")
    ax.set_title("yolox-nano, first 300 steps of real runs, several seeds")
    ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def parse_case(text: str) -> Tuple[str, int, int]:
    name, batch, size = text.split(":")
    return name, int(batch), int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="COCO-format set (default: a small synthetic one)")
    parser.add_argument("--cases", default="yolox-nano:16:416,yolox-s:8:640", help="model:batch:size,...")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--curve-steps", type=int, default=0,
                        help="also run real runs this long of each --curve-settings with each --seeds (0: skip)")
    parser.add_argument("--curve-settings", type=lambda s: [AUTO if x == "auto" else x for x in s.split(",") if x],
                        default=["fp32", AUTO], help=f"settings for the loss runs: {', '.join(x[0] for x in SETTINGS)} "
                                                     "(auto: the last)")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",") if x], default=[0],
                        help="seeds of the loss runs, e.g. 0,1,2: fp32's spread over seeds is the noise to compare to")
    parser.add_argument("--curve-batch", type=int, default=16)
    parser.add_argument("--curve-size", type=int, default=320)
    parser.add_argument("--lr-per-image", type=float, default=0.000625)
    parser.add_argument("--loader-workers", type=lambda t: [int(w) for w in t.split(",")], default=[],
                        help="also time the augmented data pipeline alone with these worker counts, e.g. 1,2")
    parser.add_argument("--loader-batches", type=int, default=10)
    parser.add_argument("--png", type=Path, default=Path("train_loss_bf16.png"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--official", action="store_true",
                        help="also time the official YOLOX 0.3.0 step (pip install --no-build-isolation yolox==0.3.0) "
                             "on the same weights and batch, and give every ratio against it")
    args = parser.parse_args()
    unknown = set(args.curve_settings) - {setting[0] for setting in SETTINGS}
    if unknown:
        parser.error(f"--curve-settings: unknown {', '.join(sorted(unknown))}")

    import torch

    from edgedet.data.synth_dataset import write_synth_dataset
    from edgedet.train.trainer import resolve_precision

    torch.set_num_threads(args.threads)
    if resolve_precision("auto", torch.device("cpu")) != "bf16":
        print("note: this CPU has no AVX-512 BF16 or AMX; bf16 autocast is emulated", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="edgedet-train-bench-") as work:
        work = Path(work)
        data = args.data or write_synth_dataset(work / "synth", {"train": 64, "val": 4}, seed=0)
        report = {"threads": args.threads, "cases": []}
        for case in filter(None, args.cases.split(",")):
            result = time_training_step(*parse_case(case), data, args.steps, args.warmup, official=args.official)
            report["cases"].append(result)
            print(json.dumps(result), flush=True)
        for workers in args.loader_workers:
            result = time_data_loading(data, "yolox-nano", args.curve_batch, args.curve_size, workers, args.loader_batches)
            report.setdefault("data_loading", []).append(result)
            print(json.dumps(result), flush=True)
        if args.curve_steps:
            curves = loss_curves(data, args.curve_steps, args.curve_batch, args.curve_size, args.lr_per_image, work,
                                 args.curve_settings, args.seeds)
            report["curves"] = summarise_curves(curves)
            report["curve_seconds"] = {label: c["seconds"] for label, c in curves.items()}
            plot_curves(curves, args.png)
            print(json.dumps(report["curves"]), f"plot: {args.png}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
