import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgedet.cli import cli
from edgedet.data.synth_dataset import write_synth_dataset
from edgedet.train import TrainConfig, TrainError, TrainStep, train


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synth_dataset(root, {"train": 16, "val": 4}, size=(128, 128), seed=0)
    return root


def _cfg(data, out, **kw):
    base = dict(data=str(data), model="yolox-nano", out=str(out), epochs=2, batch=4, input_size=(128, 128), workers=0,
                eval_interval=100, eval_limit=4, no_aug_epochs=1, warmup_epochs=1, precision="fp32", threads=1,
                channels_last=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_short_run_lowers_the_loss(tiny_data, tmp_path):
    # all 16 images in every step, no mosaic: the loss must fall
    cfg = _cfg(tiny_data, tmp_path / "run", epochs=20, batch=16, no_aug_epochs=20, warmup_epochs=0,
               basic_lr_per_img=0.1 / 16)
    losses = []
    train(cfg, progress=lambda e: losses.append(e.losses["loss"]) if isinstance(e, TrainStep) else None)
    assert len(losses) == 20
    assert sum(losses[-3:]) / 3 < 0.95 * sum(losses[:3]) / 3  # measured: 12.4 -> 11.4


@pytest.mark.slow
def test_resume_reaches_the_same_weights(tiny_data, tmp_path):
    full = tmp_path / "full"
    train(_cfg(tiny_data, full, epochs=3))
    part = tmp_path / "part"
    train(_cfg(tiny_data, part, epochs=3), progress=_stop_after_epoch(2))  # "killed" during epoch 3
    assert torch.load(part / "last.pth", weights_only=True)["start_epoch"] == 2
    train(_cfg(tiny_data, part, epochs=3, resume=True))
    a = torch.load(full / "last.pth", weights_only=True)
    b = torch.load(part / "last.pth", weights_only=True)
    assert a["start_epoch"] == b["start_epoch"] == 3
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    # the official layout: "model" holds weights loadable by load_checkpoint
    from edgedet.models import build_model, load_checkpoint

    load_checkpoint(build_model("yolox-nano", num_classes=6), full / "last.pth")
    assert (full / "best.pth").is_file()


class _Killed(Exception):
    pass


def _stop_after_epoch(n):
    def progress(record):
        if record.epoch > n:
            raise _Killed()
    return _raising(progress)


def _raising(progress):
    def wrapper(record):
        try:
            progress(record)
        except _Killed:
            raise KeyboardInterrupt
    return wrapper


@pytest.fixture(autouse=True)
def _swallow_interrupt(monkeypatch):
    import edgedet.train.trainer as trainer

    real = trainer.train

    def run(cfg, progress=None):
        try:
            return real(cfg, progress)
        except KeyboardInterrupt:
            return None

    monkeypatch.setattr("tests.train.test_trainer.train", run)


def test_bad_requests(tiny_data, tmp_path):
    with pytest.raises(TrainError, match="batch size 64 is larger than the training set \\(16 images\\)"):
        train(_cfg(tiny_data, tmp_path / "x", batch=64))
    import shutil

    shutil.copytree(tiny_data, tmp_path / "noval")
    (tmp_path / "noval" / "annotations" / "val.json").unlink()
    with pytest.raises(TrainError, match="no val split"):
        train(_cfg(tmp_path / "noval", tmp_path / "y"))
    with pytest.raises(TrainError, match="nothing to resume"):
        train(_cfg(tiny_data, tmp_path / "z", resume=True))


def test_train_cli_reports_errors(tiny_data, tmp_path):
    result = CliRunner().invoke(cli, ["train", "--data", str(tiny_data), "--batch", "64", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "batch size 64 is larger than the training set" in result.output


@pytest.mark.slow
def test_two_process_ddp_ranks_hold_identical_weights(tiny_data, tmp_path):
    import edgedet.train.trainer as trainer

    out = tmp_path / "ddp"
    cfg = _cfg(tiny_data, out, epochs=1, batch=8, devices=2, iters_per_epoch=2, eval_interval=1)
    result = trainer.train(cfg)
    assert result["epochs"] == 1 and (out / "last.pth").is_file() and (out / "best.pth").is_file()

    def records(name):
        return [json.loads(line) for line in (out / name).read_text().splitlines()]

    main, other = records("train_log.jsonl"), records("train_log.rank1.jsonl")
    assert len([r for r in main if "iter" in r]) == len([r for r in other if "iter" in r]) == 2
    digest = {r["rank"]: r["weights_sha256"] for r in main + other if "weights_sha256" in r}
    assert set(digest) == {0, 1} and digest[0] == digest[1]


def test_strip_checkpoint_keeps_loadable_weights_only(tmp_path):
    from edgedet.models import build_model, load_checkpoint
    from edgedet.train.trainer import strip_checkpoint

    model = build_model("yolox-nano", num_classes=6)
    src = tmp_path / "last.pth"
    torch.save({"model": model.state_dict(), "train_model": model.state_dict(), "optimizer": {"state": {}},
                "model_name": "yolox-nano", "num_classes": 6, "class_names": list("abcdef"), "input_size": [320, 320],
                "start_epoch": 3}, src)
    dst = strip_checkpoint(src, tmp_path / "demo.pth", train_command="edgedet train ...")
    state = torch.load(dst, weights_only=True)
    assert "optimizer" not in state and "train_model" not in state and state["train_command"] == "edgedet train ..."
    result = load_checkpoint(build_model("yolox-nano", num_classes=6), dst)
    assert result.extra["class_names"] == list("abcdef")


def test_multiscale_sizes_and_target_scaling():
    from edgedet.train.trainer import multiscale_resize, multiscale_size

    sizes = {multiscale_size((640, 640), seed=0, step=s) for s in range(0, 2000, 10)}
    assert all(s[0] == s[1] and s[0] % 32 == 0 and 480 <= s[0] <= 800 for s in sizes) and len(sizes) > 5
    assert multiscale_size((640, 640), 0, 10) == multiscale_size((640, 640), 0, 19)  # fixed for 10 iterations
    images = torch.zeros(1, 3, 64, 96)
    images[..., 16:32, 24:48] = 255
    targets = torch.tensor([[[0, 36.0, 24.0, 24.0, 16.0]]])
    big, t = multiscale_resize(images, targets, (128, 192))
    assert big.shape[-2:] == (128, 192)
    torch.testing.assert_close(t[0, 0], torch.tensor([0, 72.0, 48.0, 48.0, 32.0]))
    assert big[0, 0, 48, 72] == 255 and big[0, 0, 10, 10] == 0


def test_fine_tuning_from_coco_weights_to_other_classes(tiny_data, tmp_path, reference_ckpt, caplog):
    import logging

    out = tmp_path / "ft"
    with caplog.at_level(logging.INFO):
        train(_cfg(tiny_data, out, epochs=1, iters_per_epoch=1, warmup_epochs=1, ckpt=str(reference_ckpt)))
    assert "class predictions re-initialised for 6 classes" in caplog.text
    state = torch.load(out / "last.pth", weights_only=True)
    reference = torch.load(reference_ckpt, weights_only=True)["model"]
    key = "backbone.backbone.stem.conv.conv.weight"
    torch.testing.assert_close(state["train_model"][key], reference[key])  # the warm-up's first lr is 0
    assert state["train_model"]["head.cls_preds.0.weight"].shape[0] == 6 and state["num_classes"] == 6


def test_train_cli_passes_the_learning_rate_per_image(tiny_data, tmp_path):
    out = tmp_path / "o"
    args = ["train", "--data", str(tiny_data), "--epochs", "1", "--batch", "16", "--input-size", "128", "--workers", "0",
            "--threads", "1", "--warmup-epochs", "0", "--no-aug-epochs", "0", "--eval-limit", "2",
            "--precision", "fp32", "--lr-per-image", "0.001", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps[0]["lr"] == pytest.approx(0.016)  # 0.001 per image x batch 16, no warm-up
    assert torch.load(out / "last.pth", weights_only=True)["config"]["basic_lr_per_img"] == 0.001


def test_bf16_channels_last_step_keeps_fp32_weights_and_tracks_the_fp32_loss():
    # the same model and batch: bf16 autocast + channels-last must give nearly the fp32 loss, update
    # the weights, and leave the master weights fp32
    import copy

    from edgedet.models import build_model
    from edgedet.train.schedule import build_optimizer
    from edgedet.train.trainer import train_step

    torch.manual_seed(0)
    fp32_model = build_model("yolox-nano", num_classes=3).train()
    bf16_model = copy.deepcopy(fp32_model).to(memory_format=torch.channels_last)
    images = torch.rand(2, 3, 64, 64) * 255
    targets = torch.tensor([[[0, 20.0, 20.0, 16.0, 12.0], [0, 0, 0, 0, 0]], [[2, 40.0, 30.0, 20.0, 30.0], [1, 10.0, 50.0, 8.0, 8.0]]])
    before = bf16_model.head.cls_preds[0].weight.detach().clone()
    loss32 = train_step(fp32_model, build_optimizer(fp32_model, 0.01), images, targets, (8, 16, 32))
    loss16 = train_step(bf16_model, build_optimizer(bf16_model, 0.01), images, targets, (8, 16, 32), precision="bf16",
                        channels_last=True)
    assert abs(float(loss16.total.detach()) - float(loss32.total.detach())) < 0.05 * float(loss32.total.detach())
    weight = bf16_model.head.cls_preds[0].weight
    assert weight.dtype == torch.float32 and not torch.equal(weight.detach(), before)


def test_prediction_convs_run_in_fp32_under_bf16_autocast_when_asked():
    from edgedet.models import build_model

    model = build_model("yolox-nano", num_classes=3).train()
    images = torch.rand(1, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(images)[0].dtype == torch.bfloat16
        model.head.predictions_in_fp32 = True
        assert all(level.dtype == torch.float32 for level in model(images))
    assert model(images)[0].dtype == torch.float32  # no autocast: unchanged


def test_warns_when_every_epoch_is_a_no_aug_epoch(tiny_data, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        train(_cfg(tiny_data, tmp_path / "run", epochs=1, no_aug_epochs=1, iters_per_epoch=1))
    assert "the whole run is without mosaic/mixup, at the minimum learning rate" in caplog.text


def test_devices_that_cannot_run_here_are_errors(monkeypatch):
    import edgedet.train.trainer as trainer
    from edgedet.train.trainer import TrainError, resolve_device, resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(TrainError, match="--device cuda: CUDA is not available here"):
        resolve_device("cuda")
    with pytest.raises(TrainError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    # A machine with one GPU (only the counts are faked: no tensor goes to it).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda", 0) and resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(TrainError, match="--device cuda:1: there are 1 CUDA devices"):
        resolve_device("cuda:1")
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"

    cpu = torch.device("cpu")
    with pytest.raises(TrainError, match="--precision fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    monkeypatch.setattr(trainer, "_cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(TrainError, match="this CPU has no AVX-512 BF16 or AMX"):
        resolve_precision("bf16", cpu)
    assert resolve_precision("bf16", cpu, allow_emulated_bf16=True) == "bf16"
    monkeypatch.setattr(trainer, "_cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"


def test_train_cli_refuses_a_missing_gpu_with_one_line(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(cli, ["train", "--data", str(tiny_data), "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "Error: --device cuda: CUDA is not available here" in result.output
    assert not (tmp_path / "last.pth").exists()


def test_the_grad_scaler_path_gives_the_plain_step_when_disabled():
    # What fp16 on CUDA runs (scale, step, update), exercised on the CPU with the scaler disabled.
    from edgedet.models import build_model
    from edgedet.train.schedule import build_optimizer
    from edgedet.train.trainer import train_step

    import copy

    torch.manual_seed(0)
    a = build_model("yolox-nano", num_classes=3).train()
    b = copy.deepcopy(a)
    images = torch.rand(2, 3, 64, 64) * 255
    targets = torch.tensor([[[0, 20.0, 20.0, 16.0, 12.0]], [[2, 40.0, 30.0, 20.0, 30.0]]])
    train_step(a, build_optimizer(a, 0.01), images, targets, (8, 16, 32))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    train_step(b, build_optimizer(b, 0.01), images, targets, (8, 16, 32), scaler=scaler)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_the_log_starts_with_device_precision_and_memory_format(tiny_data, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="edgedet"):
        train(_cfg(tiny_data, tmp_path / "run", epochs=1, iters_per_epoch=1, device="cpu"))
    first = next(r.getMessage() for r in caplog.records if r.name.startswith("edgedet.train"))
    assert first == "device cpu, precision fp32, memory format contiguous (NCHW)"


def test_cpu_training_uses_the_cpu_kernels_unless_told_not_to(tiny_data, tmp_path, caplog):
    import logging

    for enabled in (True, False):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="edgedet"):
            train(_cfg(tiny_data, tmp_path / f"run{enabled}", epochs=1, iters_per_epoch=1, channels_last=True,
                       cpu_kernels=enabled))
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CPU kernels:")]
        assert lines == (["CPU kernels: 104 BatchNorm+SiLU fused, 6 strided depthwise convs in fp32 under bf16"]
                         if enabled else [])


def test_state_dicts_are_moved_to_the_cpu_for_saving():
    from edgedet.train.trainer import _on_cpu

    state = {"model": {"w": torch.ones(2, requires_grad=True)}, "optimizer": {"state": {0: {"buf": torch.zeros(2)}},
                                                                              "param_groups": [{"lr": 0.1}]}}
    moved = _on_cpu(state)
    assert moved["optimizer"]["param_groups"] == [{"lr": 0.1}] and not moved["model"]["w"].requires_grad
    assert moved["optimizer"]["state"][0]["buf"].device.type == "cpu"


def test_half_stripped_checkpoint_loads_into_fp32_and_keeps_the_outputs(tmp_path):
    from edgedet import demo_checkpoint
    from edgedet.models import build_model, fuse_model, load_checkpoint
    from edgedet.train.trainer import strip_checkpoint

    half = strip_checkpoint(demo_checkpoint(), tmp_path / "half.pth", half=True)
    state = torch.load(half, weights_only=True)["model"]
    assert state["backbone.backbone.stem.conv.conv.weight"].dtype == torch.float16
    assert state["backbone.backbone.stem.conv.bn.running_var"].dtype == torch.float32
    full, small = build_model("yolox-nano", num_classes=6).eval(), build_model("yolox-nano", num_classes=6).eval()
    load_checkpoint(full, demo_checkpoint())
    load_checkpoint(small, half)  # strict: the fp16 tensors are copied into the fp32 parameters
    assert all(p.dtype == torch.float32 for p in small.parameters())
    images = torch.rand(1, 3, 128, 128) * 255
    with torch.no_grad():
        a, b = fuse_model(full)(images), fuse_model(small)(images)
    scores_a, scores_b = a[..., 4:5] * a[..., 5:], b[..., 4:5] * b[..., 5:]
    assert float((scores_a - scores_b).abs().max()) < 2e-3
    assert half.stat().st_size < 0.6 * Path(demo_checkpoint()).stat().st_size


def test_the_shipped_tiny_checkpoint_loads_strictly_into_fp32_yolox_tiny_at_its_export_size():
    from edgedet import demo_checkpoint
    from edgedet.models import build_model, load_checkpoint, read_checkpoint

    state, extra = read_checkpoint(demo_checkpoint("yolox-tiny"))
    assert extra["model_name"] == "yolox-tiny" and list(extra["input_size"]) == [576, 576]
    assert state["backbone.backbone.stem.conv.conv.weight"].dtype == torch.float16  # shipped half, under 20 MB
    model = build_model("yolox-tiny", num_classes=extra["num_classes"])
    load_checkpoint(model, demo_checkpoint("yolox-tiny"))  # strict
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    assert Path(demo_checkpoint("yolox-tiny")).stat().st_size < 20e6
