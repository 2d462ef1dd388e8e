"""The ``edgedet`` command line. Each command parses its options and calls one library
function; heavy libraries (torch, onnx) are imported inside the commands that need them."""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Optional

import click

from . import __version__, example_images
from .cli_types import BATCH_PROFILE, IMAGE_SIZE, MODEL_NAME, PROVIDER, PROVIDER_HELP, SIZE_PATH
from .cli_progress import ProgressBar, TrainView
from .tables import format_table


def _setup_logging(verbose: bool) -> None:
    # Only edgedet's own packages log at INFO: the libraries under them report every step at INFO,
    # several on the root logger (ONNX Runtime's quantizer: one "Increased scale" line per channel;
    # onnx_ir: one "Replaced initializer" per deduplicated constant). -v shows everything.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        logging.getLogger("edgedet").setLevel(logging.INFO)  # edgedet.exporters and edgedet.calibration too


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="edgedet")
@click.option("-v", "--verbose", is_flag=True, help="Print debug messages.")
def cli(verbose: bool) -> None:
    """edgedet: YOLOX detectors from PyTorch to the edge.

    Export YOLOX to ONNX, quantize it, and run it on ONNX Runtime's TensorRT, CUDA and
    CPU providers. Run `edgedet COMMAND --help` for each command's options.

    \b
    One convention across commands:
      -o/--out PATH     every output (file or folder)
      --json FILE       every machine-readable report
      --limit N         every cap on the number of evaluated images
      -m/--model NAME   a zoo model (yolox-nano ... yolox-x)
      --provider NAME   auto, tensorrt, cuda, ..., cpu (env EDGEDET_PROVIDER)
    Exit status: 0 done, 1 failed (or some inputs failed), 2 usage error or missing dependency.
    """
    _setup_logging(verbose)


@cli.command()
@click.option(
    "--input-size", type=int, default=None, metavar="N",
    help="Count FLOPs at N x N instead of each model's official test size.",
)
def info(input_size: Optional[int]) -> None:
    """Print the YOLOX model zoo (sizes, parameters, FLOPs) and the execution providers here.

    FLOPs follow the YOLOX README's convention (2 x (conv MACs + bias adds + 2 per BatchNorm
    element)); "conv GFLOPs" counts convolutions alone. With torch installed they are counted
    from the models; without it (the runtime-only install) they come from the zoo table. Each
    provider ONNX Runtime lists is tried on a one-node model, and one that cannot run here says why.

    Example: edgedet info --input-size 320
    """
    from .runtime.providers import probe_providers
    from .zoo import ZOO

    if input_size is not None and (input_size < 32 or input_size % 32):
        raise click.BadParameter(f"{input_size} is not a positive multiple of 32", param_hint="--input-size")
    counted = _has("torch")
    rows = []
    for name, spec in ZOO.items():
        at = (input_size, input_size) if input_size else spec.test_size
        if counted:
            from .models.flops import zoo_cost

            cost = zoo_cost(name, at)
            params, gflops, conv_gflops = cost.params, cost.gflops, cost.conv_gflops
        else:
            params, (gflops, conv_gflops) = spec.params, spec.gflops_at(at)
        rows.append((
            name, f"{spec.depth:g}", f"{spec.width:g}", "yes" if spec.depthwise else "no",
            f"{at[0]}x{at[1]}", f"{params:,}", f"{gflops:.2f}", f"{conv_gflops:.2f}",
        ))
    header = ("model", "depth", "width", "depthwise", "input", "params", "GFLOPs", "conv GFLOPs")
    click.echo(format_table(header, rows))
    click.echo("counted from the models" if counted else "from the zoo table (torch is not installed)")
    click.echo("")
    try:
        probes = probe_providers()
    except ImportError:
        click.echo('providers: onnxruntime is not installed (pip install "edgedet[cpu]" or "edgedet[gpu]")')
        return
    click.echo(format_table(("provider", "runs here", "why not"),
                            [(p.name, "yes" if p.usable else "no", p.reason or "-") for p in probes]))


class MissingDependencyError(click.ClickException):
    """A command that needs the toolkit, run on the runtime-only install (exit status 2)."""

    exit_code = 2


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _require(command: str, *modules: str) -> None:
    """Fail with one line before any work when ``command`` needs a module that is not installed."""
    missing = [m for m in modules if not _has(m)]
    if missing:
        raise MissingDependencyError(
            f"edgedet {command} needs {', '.join(missing)}, which this installation lacks (the runtime-only "
            f'install); add the toolkit: pip install "edgedet[full]" (or "edgedet[toolkit,gpu]" with onnxruntime-gpu)')


EXPORT_NEEDS = ("torch", "onnx", "onnxscript")


def _fail(e: Exception) -> "click.ClickException":
    return click.ClickException(str(e))


@cli.command()
@click.option("-m", "--model", "model_name", type=MODEL_NAME, default="yolox-s", show_default=True, metavar="NAME",
              help="Zoo model: yolox-nano, yolox-tiny, yolox-s, yolox-m, yolox-l, yolox-x.")
@click.option("--ckpt", default=None, metavar="PATH|demo",
              help="Official or edgedet .pth checkpoint. Without it the weights are random.")
@click.option("--num-classes", type=click.IntRange(min=1), default=None, metavar="N",
              help="Class count (default: from the checkpoint, else 80).")
@click.option("--class-names", type=click.Path(exists=True, dir_okay=False), default=None, metavar="FILE",
              help="Class names: one per line, or a JSON list.")
@click.option("--input-size", type=IMAGE_SIZE, default=None, metavar="N|HxW",
              help="Network input, multiples of 32 (default: the model's official test size).")
@click.option("--opset", type=click.IntRange(min=18), default=18, show_default=True, metavar="N", help="ONNX opset.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, metavar="N", help="Fixed batch size.")
@click.option("--dynamic-batch", is_flag=True, help="Make the batch axis dynamic (overrides --batch).")
@click.option("--output-format", type=click.Choice(["decoded", "raw", "nms"]), default="decoded", show_default=True,
              help="decoded: [B, N, 5+C] boxes decoded in the graph; raw: the official export's layout; "
                   "nms: end-to-end, NMS in the graph (num_dets, boxes, scores, class_ids).")
@click.option("--max-det", type=click.IntRange(min=1), default=300, show_default=True, metavar="K",
              help="nms format: detections kept per image.")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.25, show_default=True, help="nms format: score threshold.")
@click.option("--iou", type=click.FloatRange(0, 1), default=0.45, show_default=True, help="nms format: IoU threshold.")
@click.option("--fp16", is_flag=True, help="float16 weights and compute; inputs and outputs stay float32.")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="Simplify with onnxsim (onnxslim as fallback).")
@click.option("--all-sizes", is_flag=True, help="Export nano, tiny, s, m, l and x into the folder given by -o.")
@click.option("-o", "--out", "--output", "output", type=click.Path(), default=None, metavar="OUT",
              help="Output .onnx file (default: <model>.onnx), or a folder with --all-sizes.")
def export(model_name, ckpt, num_classes, class_names, input_size, opset, batch, dynamic_batch, output_format,
           max_det, conf, iou, fp16, simplify, all_sizes, output) -> None:
    """Export a YOLOX model to a self-describing ONNX file.

    The file carries its metadata (input size, classes, pre-processing, output format,
    precision), is simplified, checked with onnx.checker and verified against PyTorch on
    ONNX Runtime before it is written; a failed check writes nothing.

    \b
    Examples:
      edgedet export --model yolox-nano --ckpt demo -o nano.onnx
      edgedet export --model yolox-s --ckpt yolox_s.pth --dynamic-batch --output-format nms
      edgedet export --all-sizes --input-size 320 -o zoo/
    """
    _require("export", *EXPORT_NEEDS)
    from pathlib import Path

    from edgedet.exporters import ExportError, ParityError, export_model

    kwargs = dict(
        ckpt=_resolve_ckpt(ckpt, model_name), num_classes=num_classes, input_size=input_size, opset=opset,
        batch=None if dynamic_batch else batch, output_format=output_format, fp16=fp16, simplify=simplify,
        max_det=max_det, conf=conf, iou=iou,
    )
    try:
        if class_names:
            from edgedet.exporters.export import parse_class_names

            kwargs["class_names"] = parse_class_names(class_names)
        if all_sizes:
            _export_all(Path(output or "zoo"), kwargs)
            return
        out = Path(output or f"{model_name}.onnx")
        result = export_model(model_name, out, echo=click.echo, **kwargs)
    except (ExportError, ParityError) as e:
        raise _fail(e) from None
    click.echo(
        f"wrote {result.path} ({result.metadata.model_name}, {result.metadata.output_format}, "
        f"{result.metadata.precision}, {result.size_mb:.1f} MB, {result.nodes} nodes) in {result.seconds:.1f}s"
    )


def _resolve_ckpt(ckpt, model_name: str = "yolox-nano", hint: str = "--ckpt"):
    """``demo`` -> the shipped checkpoint of ``model_name``; any other value is a path."""
    if ckpt == "demo":
        from . import demo_checkpoint

        try:
            return demo_checkpoint(model_name)
        except FileNotFoundError as e:
            raise click.BadParameter(str(e), param_hint=hint) from None
    return ckpt


def _export_all(out_dir, kwargs) -> None:
    from edgedet.exporters.zoo_export import export_all_sizes
    from .models.zoo import ZOO

    if kwargs.get("ckpt"):
        raise click.UsageError("--all-sizes exports random weights for each size; --ckpt applies to one model")
    kwargs.pop("ckpt")
    header = ("model", "input", "nodes before", "nodes after", "MB", "parity (rel)", "seconds", "peak MB", "status")

    def row_of(r):
        size = f"{r.input_size[0]}x{r.input_size[1]}" if r.input_size else "-"
        num = lambda v, f: f.format(v) if v is not None else "-"  # noqa: E731
        return (r.model_name, size, num(r.nodes_before, "{}"), num(r.nodes_after, "{}"), num(r.size_mb, "{:.1f}"),
                num(r.parity_rel, "{:.1e}"), f"{r.seconds:.1f}", num(r.peak_mb, "{:.0f}"), r.error or "ok")

    names = list(ZOO)
    rows = export_all_sizes(
        out_dir, names, on_start=lambda i, name: click.echo(f"[{i}/{len(names)}] exporting {name} ...", err=True),
        on_row=lambda r: click.echo(f"{r.model_name}: {r.error or 'ok'} ({r.seconds:.1f}s)"), **kwargs)
    click.echo(format_table(header, [row_of(r) for r in rows]))
    failed = [r for r in rows if r.error]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(rows)} sizes failed: " + ", ".join(r.model_name for r in failed))


@cli.command("build-engine")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Engine and timing cache folder (default: MODEL's name with .trt, beside it).")
@click.option("--fp16", is_flag=True, help="Let TensorRT use float16 kernels.")
@click.option("--int8", is_flag=True, help="INT8 engine from a quantized (QDQ) model.")
@click.option("--batch-profile", type=BATCH_PROFILE, default=None, metavar="MIN,OPT,MAX",
              help="Batch optimisation profile for a dynamic-batch model (default 1,1,8).")
@click.option("--workspace-mb", type=click.IntRange(min=1), default=None, metavar="MB", help="Builder workspace limit.")
@click.option("--opt-level", type=click.IntRange(0, 5), default=None, help="TensorRT builder optimisation level.")
@click.option("--ep-context", is_flag=True, help="Also write MODEL_ctx.onnx, an EP-context model embedding the engine.")
@click.option("--device", "device_id", type=click.IntRange(min=0), default=0, show_default=True, help="GPU index.")
def build_engine_cmd(model, cache_dir, fp16, int8, batch_profile, workspace_mb, opt_level, ep_context, device_id) -> None:
    """Build a TensorRT engine ahead of time through ONNX Runtime's TensorRT provider.

    Later runs with the same cache folder (edgedet infer MODEL SOURCE --provider tensorrt
    --trt-cache DIR, or TensorRTOptions(engine_cache_dir=DIR) in Python) load the engine
    instead of building it.

    \b
    Example:
      edgedet build-engine yolox-s.onnx --fp16
    """
    from edgedet.exporters.tensorrt import EngineBuildError, build_engine

    try:
        result = build_engine(model, cache_dir, fp16=fp16, int8=int8, batch_profile=batch_profile,
                              workspace_bytes=workspace_mb * (1 << 20) if workspace_mb else None,
                              builder_optimization_level=opt_level, ep_context=ep_context, device_id=device_id)
    except (EngineBuildError, ValueError) as e:
        raise _fail(e) from None
    click.echo(f"engine built in {result.seconds:.1f}s; cache: {result.cache_dir}"
               + (f"; EP-context model: {result.ep_context_model}" if result.ep_context_model else ""))


def _print_summary(summary) -> None:
    click.echo(
        f"{summary.done} images done" + (f", {summary.resumed} already done before" if summary.resumed else "")
        + f", {len(summary.failures)} failed, {summary.detections} detections in {summary.seconds:.1f}s "
        f"({summary.images_per_second:.1f} images/s); outputs in {summary.out_dir}"
    )
    if summary.failures:
        click.echo(f"failed ({len(summary.failures)}):", err=True)
        for path, reason in summary.failures:
            click.echo(f"  {path}: {reason}", err=True)


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("source")
@click.option("-o", "--out", type=click.Path(file_okay=False), default="runs/infer", show_default=True, metavar="DIR",
              help="Output folder: predictions.jsonl, coco_results.json, summary.json, images/.")
@click.option("--conf", type=click.FloatRange(0, 1), default=0.25, show_default=True, help="Score threshold (obj * cls).")
@click.option("--iou", type=click.FloatRange(0, 1), default=0.45, show_default=True, help="NMS IoU threshold.")
@click.option("--max-det", type=click.IntRange(min=1), default=300, show_default=True, help="Detections kept per image.")
@click.option("--classes", default=None, metavar="LIST", help="Keep only these classes: ids or names, comma-separated.")
@click.option("--class-agnostic", is_flag=True, help="One NMS over all classes instead of one per class.")
@click.option("--provider", type=PROVIDER, default="auto", show_default=True, envvar="EDGEDET_PROVIDER", metavar="NAME",
              help=PROVIDER_HELP)
@click.option("--strict", is_flag=True, help="Fail instead of falling back when the provider is not obtained.")
@click.option("--trt-cache", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="TensorRT engine and timing cache folder (what edgedet build-engine wrote): a cached engine is "
                   "loaded instead of built.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images per inference run (dynamic-batch models; a fixed batch is used as it is).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime threads per run (default: 1 per worker).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel pipelines, each reading, running and drawing its own images (default: CPU count, at most 4).")
@click.option("--save-images/--no-save-images", default=True, show_default=True, help="Write annotated images (or video).")
@click.option("--resume", is_flag=True, help="Keep what an earlier run in --out finished and do the rest.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Video/camera: stop after N frames.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: parallel pipelines on this machine; ray: a pool of Ray actors (edgedet[ray]), same outputs.")
@click.option("--ray-address", default=None, metavar="ADDRESS",
              help="With --engine ray: the cluster to join (auto, or HOST:PORT); default: a local Ray on this machine.")
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="With --engine ray: detector actors (default: one per CPU, or per GPU with cuda/tensorrt).")
def infer(model, source, out, conf, iou, max_det, classes, class_agnostic, provider, strict, trt_cache, batch, threads,
          workers, save_images, resume, max_frames, engine, ray_address, actors) -> None:
    """Detect objects in an image, a folder, a glob, a video or a camera.

    SOURCE is an image file or URI, a folder (searched recursively), a quoted glob such
    as "shots/*.png", a list of image paths or URIs (.txt one per line, or .parquet with a
    path/uri column; URIs: file, http(s), and s3/gs/hdfs with pyarrow), a video file, or a
    camera index such as 0. One bad file never stops the run: failures are listed at the
    end and the exit status is 1.

    \b
    Examples:
      edgedet infer yolox-nano.onnx photos/ -o runs/photos
      edgedet infer yolox-s.onnx "cam/**/*.jpg" --classes person,car --provider cuda
      edgedet infer yolox-nano.onnx street.mp4 --max-frames 300
      edgedet infer yolox-s.onnx captures.parquet -o out --engine ray --ray-address auto
    """
    from pathlib import Path

    from .runtime.infer import default_workers, infer_source
    from .runtime.sources import resolve_source

    try:
        src = resolve_source(source)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="SOURCE") from None
    workers = workers or default_workers()
    detector = _infer_detector(model, provider, conf, iou, max_det, classes, class_agnostic, strict, batch, trt_cache,
                               threads or (1 if workers > 1 else None))
    click.echo(f"{detector!r}; providers: {', '.join(detector.providers)}", err=True)
    try:
        with ProgressBar("infer", total=len(src.images) if src.kind == "images" else max_frames) as bar:
            if engine == "ray":
                summary = _infer_ray(model, src, Path(out), detector, save_images, resume, ray_address, actors,
                                     threads, bar)
            else:
                summary = infer_source(detector, src, Path(out), save_images=save_images, resume=resume,
                                       workers=workers, batch=batch, max_frames=max_frames, progress=bar)
    except ValueError as e:
        raise _fail(e) from None
    _print_summary(summary)
    if summary.fatal:
        raise click.ClickException(summary.fatal)
    if summary.failures:
        sys.exit(1)


def _infer_detector(model, provider, conf, iou, max_det, classes, class_agnostic, strict, batch, trt_cache, threads):
    """The Detector of ``edgedet infer``, with its errors as the CLI's."""
    from .runtime import Detector, TensorRTOptions
    from .runtime.providers import ProviderError

    class_list = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    trt = TensorRTOptions(engine_cache_dir=trt_cache, timing_cache_dir=trt_cache) if trt_cache else None
    try:
        return Detector(model, providers=provider, conf=conf, iou=iou, max_det=max_det, class_agnostic=class_agnostic,
                        classes=class_list, threads=threads, strict=strict, max_batch=batch, tensorrt=trt)
    except ValueError as e:
        if str(e).startswith(("unknown class", "class id")):
            raise click.BadParameter(str(e), param_hint="--classes") from None
        raise _fail(e) from None
    except (ProviderError, FileNotFoundError) as e:
        raise _fail(e) from None


def _infer_ray(model, src, out, detector, save_images, resume, ray_address, actors, threads, progress):
    from .workflows.ray_infer import RayUnavailable, infer_ray

    if src.kind != "images":
        raise click.UsageError("--engine ray takes images (a folder, a glob or a file); videos and cameras run locally")
    gpu = detector.session_info.provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
    options = {"providers": detector.session_info.requested, "conf": detector.conf, "iou": detector.iou,
               "max_det": detector.max_det, "class_agnostic": detector.class_agnostic, "classes": detector.classes,
               "threads": threads or 1}
    try:
        return infer_ray(model, src, out, detector_options=options, save_images=save_images, resume=resume,
                         ray_address=ray_address, actors=actors, cpus_per_actor=0 if gpu else (threads or 1),
                         gpus_per_actor=1 if gpu else 0, progress=progress, detector=detector)
    except RayUnavailable as e:
        raise MissingDependencyError(str(e)) from None


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--provider", type=PROVIDER, default="auto", show_default=True, envvar="EDGEDET_PROVIDER", metavar="NAME",
              help=PROVIDER_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ONNX Runtime intra-op threads.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch for dynamic models.")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True, help="Untimed runs per model.")
@click.option("--iters", type=click.IntRange(min=1), default=50, show_default=True, help="Timed rounds.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=None, help="Time for this long instead of --iters.")
@click.option("--end-to-end", "e2e", is_flag=True, help="Also time decode + letterbox + run + post-process of a real image.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Image for --end-to-end (default: one of the shipped example images).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, metavar="FILE", help="Write the results.")
def bench(models, provider, threads, batch, warmup, iters, seconds, e2e, image, json_out) -> None:
    """Time ONNX models: cold start, latency percentiles, throughput, memory.

    Several models are timed interleaved (A B A B ...) and compared with the first.
    Achieved GFLOP/s (FLOPs from the metadata over the measured time) is shown beside this
    machine's measured fp32 matrix-multiply peak.

    \b
    Example:
      edgedet bench nano.onnx nano-int8.onnx --threads 1 --end-to-end
    """
    from pathlib import Path

    from .runtime.bench import benchmark, matmul_peak_gflops
    from .runtime.fileio import atomic_write_json

    picture = None
    if e2e:
        picture = Path(image) if image else sorted(Path(example_images()).glob("*.jpg"))[0]
    try:
        with ProgressBar("bench") as bar:
            results = benchmark(models, providers=provider, threads=threads, batch=batch, warmup=warmup,
                                iters=None if seconds else iters, seconds=seconds, end_to_end=picture, progress=bar)
    except ValueError as e:
        raise _fail(e) from None
    peak = matmul_peak_gflops()
    header = ("model", "provider", "MB", "create ms", "first ms", "p50 ms", "p90 ms", "p99 ms", "img/s",
              "e2e img/s", "RSS MB", "GFLOP/s", "x first")
    rows = [(Path(r.model).name, r.provider.replace("ExecutionProvider", ""), f"{r.size_mb:.1f}", f"{r.session_ms:.0f}",
             f"{r.first_run_ms:.1f}", f"{r.p50_ms:.2f}", f"{r.p90_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.images_per_s:.1f}",
             f"{r.e2e_images_per_s:.1f}" if r.e2e_images_per_s else "-", f"{r.rss_mb:.0f}",
             f"{r.achieved_gflops_per_s:.1f}" if r.achieved_gflops_per_s else "-", f"{r.ratios['images_per_s']:.2f}")
            for r in results]
    click.echo(format_table(header, rows))
    click.echo(f"fp32 matmul peak of this machine (numpy BLAS, 1024^3): {peak:.1f} GFLOP/s")
    if json_out:
        atomic_write_json(json_out, {"results": [r.to_dict() for r in results], "matmul_peak_gflops": peak})


@cli.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--calib", required=True, type=click.Path(exists=True), metavar="SOURCE",
              help="Image folder (recursive) or COCO-format dataset (its train split; edgedet data synth output works).")
@click.option("-o", "--out", "--output", "output", type=click.Path(dir_okay=False), default=None, metavar="OUT",
              help="Output file (default: MODEL with -int8 before .onnx).")
@click.option("--num-images", type=click.IntRange(min=1), default=200, show_default=True, help="Calibration images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which images are sampled.")
@click.option("--method", type=click.Choice(["average", "minmax", "entropy", "percentile"]), default="average",
              show_default=True,
              help="How activation ranges are calibrated. average: the mean of each image's min and max; minmax: "
                   "the extremes over all images; entropy: KL divergence; percentile: clip at --percentile.")
@click.option("--percentile", type=click.FloatRange(90, 100), default=99.99, show_default=True,
              help="For --method percentile.")
@click.option("--per-channel/--per-tensor", default=True, show_default=True, help="Weight scales per output channel.")
@click.option("--channel-scales/--no-channel-scales", default=True, show_default=True,
              help="Per-channel activation scales at the inputs of depthwise convs (yolox-nano), still run by "
                   "ONNX Runtime's int8 conv; without them a depthwise model loses about half its AP.")
@click.option("--target", type=click.Choice(["cpu", "tensorrt"]), default="cpu", show_default=True,
              help="cpu: uint8 activations (x86's fast u8 x s8 kernels); tensorrt: symmetric int8 activations.")
@click.option("--exclude", default="auto", show_default=True, metavar="auto|none|NODE,...",
              help="Nodes kept in float; auto keeps the head's tail (concat, sigmoid, decode).")
@click.option("--eval", "eval_data", type=click.Path(exists=True, file_okay=False), default=None, metavar="DATA",
              help="COCO-format dataset whose val split measures fp32 and int8 AP.")
@click.option("--limit", "--eval-limit", "eval_limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --eval: evaluate on the first N val images.")
@click.option("--max-ap-drop", type=float, default=None, metavar="X",
              help="With --eval: keep moving the most sensitive layers back to float until fp32 AP - int8 AP <= X "
                   "(AP in 0..1, e.g. 0.005).")
@click.option("--max-steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="With --max-ap-drop: re-quantizations to try after the first (1, 2, 4 ... most sensitive "
                   "layers in float, then bisection to the fewest within budget).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Calibration tensor cache (default ~/.cache/edgedet/calibration).")
@click.option("--json", "--report", "report_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the report as JSON (default: OUT with .json).")
@click.option("--also-fp16", is_flag=True,
              help="Also write MODEL-fp16.onnx (export's fp16 conversion), parity-checked, in the same report.")
@click.option("--input-size", type=IMAGE_SIZE, default=None, metavar="N|HxW",
              help="For an ONNX model edgedet did not export: its input size (the official export's layout "
                   "assumed: BGR 0..255, pad 114, raw [B, N, 5+C] output).")
def quantize(model, calib, output, num_images, seed, method, percentile, per_channel, channel_scales, target, exclude,
             eval_data,
             eval_limit, max_ap_drop, max_steps, cache_dir, report_path, also_fp16, input_size) -> None:
    """Quantize an fp32 edgedet model to INT8 (QDQ) with ONNX Runtime's tooling.

    Prints and writes a report: size and latency (medians of interleaved runs, 1 thread,
    CPU provider) of fp32 and int8, and AP of both with --eval.

    \b
    Examples:
      edgedet quantize nano.onnx --calib data/synth --num-images 200
      edgedet quantize nano.onnx --calib data/synth --method entropy --eval data/synth-eval --also-fp16
      edgedet quantize yolox_s_official.onnx --calib photos/ --input-size 640
    """
    _require("quantize", "onnx", *(("pycocotools",) if eval_data else ()))
    from pathlib import Path

    from edgedet.calibration import CalibrationError, QuantizeError
    from .runtime.fileio import atomic_write_json
    from .workflows.quantize_model import run_quantize

    _check_quantize_options(eval_data, max_ap_drop, exclude, also_fp16, input_size)
    out = Path(output or str(Path(model).with_suffix("")) + "-int8.onnx")
    options = dict(num_images=num_images, seed=seed, method=method, percentile=percentile, per_channel=per_channel,
                   channel_scales=channel_scales, target=target, cache_dir=Path(cache_dir) if cache_dir else None)
    if max_ap_drop is None:
        options.update(exclude=exclude, input_size=input_size, also_fp16=also_fp16)
    try:
        with ProgressBar("sensitivity" if max_ap_drop is not None else "calibrate") as bar:
            run = run_quantize(model, calib, out, eval_data=eval_data, eval_limit=eval_limit, max_ap_drop=max_ap_drop,
                               max_steps=max_steps, echo=click.echo, progress=bar, **options)
    except (QuantizeError, CalibrationError) as e:
        raise _fail(e) from None
    _print_quantize_run(run, out)
    atomic_write_json(report_path or out.with_suffix(".json"), run.report)


def _check_quantize_options(eval_data, max_ap_drop, exclude, also_fp16, input_size) -> None:
    if max_ap_drop is not None and not eval_data:
        raise click.UsageError("--max-ap-drop needs --eval DATA to measure AP on")
    if max_ap_drop is not None and (exclude != "auto" or also_fp16):
        raise click.UsageError("--max-ap-drop starts from --exclude auto and chooses the rest itself; "
                               "--exclude and --also-fp16 go without it")
    if input_size and eval_data:
        raise click.UsageError("--eval needs an edgedet export (the runtime reads its metadata); "
                               "--input-size is only for calibrating other ONNX models")


def _print_quantize_run(run, out) -> None:
    result = run.result
    click.echo(f"kept in float ({len(result.excluded)}): {', '.join(result.excluded) or 'none'}")
    if result.fp16:
        click.echo(f"fp16: parity {result.fp16['parity_rel']:.1e} of the output scale; wrote {result.fp16['path']}")
    click.echo(format_table(("precision", "MB", "latency ms", "AP"),
                            [(name, f"{mb:.2f}", f"{ms:.2f}", f"{ap:.4f}" if ap is not None else "-")
                             for name, mb, ms, ap in run.rows()]))
    click.echo(f"latency int8/fp32: {run.report['latency_ratio']}; wrote {out}"
               + ("; calibration cache reused" if result.calibration_cached else ""))


@cli.command()
@click.option("--sizes", default="nano,tiny,s", show_default=True, metavar="LIST", help="Zoo sizes, comma-separated.")
@click.option("--precisions", default="fp32,int8", show_default=True, metavar="LIST", help="fp32, fp16, int8.")
@click.option("--ckpt", "ckpt_items", type=SIZE_PATH, multiple=True, metavar="SIZE=PATH",
              help="Weights of a size (repeatable); SIZE=demo takes its shipped checkpoint, which sizes that have "
                   "one use by default.")
@click.option("--ckpt-dir", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="A folder with yolox_<size>.pth files.")
@click.option("--input-size", type=IMAGE_SIZE, default=None, metavar="N|HxW", help="Default: each size's test size.")
@click.option("--calib", type=click.Path(exists=True), default=None, metavar="SOURCE", help="Calibration images for int8.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), default=None, metavar="VALDATA",
              help="COCO-format dataset whose val split gives AP (cells with weights only).")
@click.option("--limit", "--eval-limit", "eval_limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Evaluate on the first N val images.")
@click.option("--provider", type=PROVIDER, default="auto", show_default=True, envvar="EDGEDET_PROVIDER", metavar="NAME",
              help="Provider that times the cells: " + PROVIDER_HELP)
@click.option("--budget-ms", type=float, default=None, help="Name the most accurate cell within this p50 latency.")
@click.option("--iters", type=click.IntRange(min=1), default=30, show_default=True, help="Benchmark rounds per cell.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime intra-op threads when timing (default: ONNX Runtime's, one per core); "
                   "set it to what the target device will use.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), metavar="REPORT_DIR",
              help="Folder of report.md, report.json, pareto.png and the cells' models.")
def matrix(sizes, precisions, ckpt_items, ckpt_dir, input_size, calib, data_dir, eval_limit, provider, budget_ms, iters,
           threads, out) -> None:
    """Export, quantize, verify, evaluate and time every size x precision; report the answer.

    Writes REPORT_DIR/report.md, report.json and pareto.png (latency vs AP). Finished cells
    are skipped on a re-run; a failing cell is recorded with its reason.

    \b
    Example:
      edgedet matrix --sizes nano,tiny,s --precisions fp32,int8 \\
          --calib data/synth --data data/synth-eval --budget-ms 20 --out report/
    """
    _require("matrix", *EXPORT_NEEDS, "pycocotools", "matplotlib")
    from pathlib import Path

    from .workflows.matrix import run_matrix

    size_list = [s.strip().replace("yolox-", "") for s in sizes.split(",") if s.strip()]
    # every size with a shipped checkpoint uses it unless --ckpt-dir or --ckpt say otherwise
    from . import shipped_checkpoints

    ckpts = {name.replace("yolox-", ""): path for name, path in shipped_checkpoints().items()
             if name.replace("yolox-", "") in size_list}
    if ckpt_dir:
        for size in size_list:
            candidate = Path(ckpt_dir) / f"yolox_{size}.pth"
            if candidate.is_file():
                ckpts[size] = str(candidate)
    for size, path in ckpt_items:
        ckpts[size] = _resolve_ckpt(path, size)
    try:
        cells = run_matrix(size_list, [p.strip() for p in precisions.split(",") if p.strip()], Path(out), ckpts=ckpts,
                           input_size=input_size, calib=calib, data=data_dir, provider=provider, budget_ms=budget_ms,
                           eval_limit=eval_limit, bench_iters=iters, threads=threads, echo=click.echo)
    except ValueError as e:
        raise _fail(e) from None
    click.echo(f"report: {Path(out) / 'report.md'}, {Path(out) / 'report.json'}, {Path(out) / 'pareto.png'}")
    if any(c.status != "ok" for c in cells):
        sys.exit(1)


@cli.group()
def data() -> None:
    """Datasets: make the synthetic COCO-format set."""


@data.command("synth")
@click.argument("out", type=click.Path(file_okay=False), required=False)
@click.option("-o", "--out", "out_option", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Output folder (or give it as the argument OUT).")
@click.option("--train", "n_train", type=click.IntRange(min=0), default=2000, show_default=True, help="Training images.")
@click.option("--val", "n_val", type=click.IntRange(min=0), default=300, show_default=True, help="Validation images.")
@click.option("--size", type=IMAGE_SIZE, default="416", show_default=True, metavar="N|HxW", help="Image size.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same dataset.")
def data_synth(out, out_option, n_train, n_val, size, seed) -> None:
    """Write a synthetic COCO-format detection set (shapes on textured backgrounds).

    Six shape classes, 1 to 20 objects per image from 8 px to half the image, partial
    occlusion, textured backgrounds, low-contrast colours, noise and blur. Deterministic
    per seed; an interrupted run resumes (images already written are kept).

    \b
    Example:
      edgedet data synth data/synth --train 2000 --val 300 --size 416 --seed 0
    """
    from pathlib import Path

    from .data.synth_dataset import write_synth_dataset

    if (out is None) == (out_option is None):
        raise click.UsageError("give the output folder once: as OUT or as -o/--out")
    out = out or out_option
    splits = {k: v for k, v in (("train", n_train), ("val", n_val)) if v}
    with ProgressBar("synth") as bar:
        write_synth_dataset(Path(out), splits, size=size, seed=seed, progress=bar)
    click.echo(f"wrote {', '.join(f'{v} {k}' for k, v in splits.items())} images to {out}")


@cli.command()
@click.option("-m", "--model", "model_name", type=MODEL_NAME, default="yolox-nano", show_default=True, metavar="NAME", help="Zoo model.")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="COCO-format dataset: DIR/annotations/{train,val}.json, DIR/images/{train,val}/.")
@click.option("--ckpt", default=None, metavar="PATH", help="Initial weights (e.g. official COCO weights to fine-tune).")
@click.option("--epochs", type=click.IntRange(min=1), default=300, show_default=True, help="Training epochs.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per step (split between --devices processes).")
@click.option("--input-size", type=IMAGE_SIZE, default=None, metavar="N|HxW", help="Default: the model's test size.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data-loading processes.")
@click.option("-o", "--out", default="runs/train", show_default=True, metavar="DIR",
              help="last.pth, best.pth, train_log.jsonl.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pth.")
@click.option("--eval-interval", type=click.IntRange(min=1), default=10, show_default=True, help="Epochs between validations.")
@click.option("--limit", "--eval-limit", "eval_limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Validate on the first N val images.")
@click.option("--no-aug-epochs", type=click.IntRange(min=0), default=15, show_default=True,
              help="Last epochs without mosaic/mixup, with the L1 loss.")
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=5, show_default=True,
              help="Epochs of quadratic learning-rate warm-up.")
@click.option("--lr-per-image", type=click.FloatRange(min=0, min_open=True), default=0.01 / 64, show_default=True,
              help="Learning rate per image of the batch (the official 0.01/64); SGD's lr is this times --batch.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="auto: fp16 autocast with a GradScaler on CUDA; on CPUs bf16 autocast with AVX-512 BF16/AMX, "
                   "else fp32. fp16 on a CPU is refused.")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N",
              help="auto: the first CUDA device when there is one, else the CPU. With --devices N or torchrun each "
                   "process takes its own GPU (NCCL).")
@click.option("--allow-emulated-bf16", is_flag=True,
              help="Allow --precision bf16 on a CPU without AVX-512 BF16/AMX (software kernels, slow).")
@click.option("--cpu-kernels/--no-cpu-kernels", default=True, show_default=True,
              help="On CPUs: BatchNorm+SiLU as one kernel (compiled for this machine on first use, about 30 s, then "
                   "cached; eager with a warning where it cannot be built) and strided depthwise convs in fp32 under "
                   "bf16. The same model and checkpoints; faster steps, numbers differing only by rounding.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights, sampling and augmentation.")
@click.option("--multiscale", is_flag=True, help="Every 10 iterations train at a random size in (input/32 +- 5) * 32.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads.")
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes on this machine for DistributedDataParallel (the batch is split between them).")
def train(model_name, data_dir, ckpt, epochs, batch, input_size, workers, out, resume, eval_interval, eval_limit,
          no_aug_epochs, warmup_epochs, lr_per_image, precision, device, allow_emulated_bf16, cpu_kernels, seed,
          multiscale, threads, devices) -> None:
    """Train YOLOX on a COCO-format dataset with the official recipe.

    Mosaic/MixUp/HSV/flip/affine augmentation, SimOTA, SGD with Nesterov, warm cosine
    schedule, EMA. Checkpoints are in the official layout ("model" holds the EMA weights).

    \b
    Example:
      edgedet train --model yolox-nano --data data/synth --epochs 30 --input-size 320
    """
    _require("train", "torch", "pycocotools")
    from .train import TrainConfig, TrainError
    from .train import train as run_training

    cfg = TrainConfig(data=data_dir, model=model_name, out=out, epochs=epochs, batch=batch, input_size=input_size,
                      workers=workers, ckpt=_resolve_ckpt(ckpt, model_name), resume=resume, eval_interval=eval_interval,
                      eval_limit=eval_limit, no_aug_epochs=no_aug_epochs, warmup_epochs=warmup_epochs,
                      basic_lr_per_img=lr_per_image, precision=precision, device=device,
                      allow_emulated_bf16=allow_emulated_bf16, cpu_kernels=cpu_kernels, seed=seed, threads=threads,
                      devices=devices, multiscale=multiscale)

    try:
        with TrainView() as view:
            result = run_training(cfg, progress=view)
    except TrainError as e:
        raise _fail(e) from None
    if "best_ap" in result:  # rank 0 (other torchrun ranks only train)
        click.echo(f"done: best AP {result['best_ap']:.4f}; checkpoints in {result['out']}")


@cli.command()
@click.option("-m", "--model", "model_name", type=MODEL_NAME, default=None, metavar="NAME",
              help="Zoo model (default: from the checkpoint).")
@click.option("--ckpt", required=True, metavar="PATH|demo", help="The fp32 weights to fine-tune; demo: the shipped ones.")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="COCO-format dataset whose train split the fine-tuning reads.")
@click.option("--calib", type=click.Path(exists=True), default=None, metavar="SOURCE",
              help="Calibration images, chosen as quantize chooses them (default: DIR).")
@click.option("--num-images", type=click.IntRange(min=1), default=200, show_default=True, help="Calibration images.")
@click.option("--input-size", type=IMAGE_SIZE, default=None, metavar="N|HxW",
              help="Fine-tune and export size (default: the checkpoint's).")
@click.option("--epochs", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Passes over the train split (fractions allowed).")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images per fine-tuning step.")
@click.option("--lr-per-image", type=click.FloatRange(min=0, min_open=True), default=1e-4 / 16, show_default=True,
              help="Peak learning rate per image of the batch (cosine to zero).")
@click.option("--channel-scales/--no-channel-scales", default=True, show_default=True,
              help="As in quantize: per-channel scales at the depthwise sites, or every activation per tensor "
                   "(a faster INT8 file on depthwise models, but tuning wins back less: see docs/int8.md).")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True, help="Data-loading processes.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads.")
@click.option("--seed", type=int, default=0, show_default=True, help="Calibration sample, data order and augmentation.")
@click.option("--eval", "eval_data", type=click.Path(exists=True, file_okay=False), default=None, metavar="DATA",
              help="Measure AP of the fp32 reference and the INT8 file on DATA's val split.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate on the first N val images.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder of qat.pth, fp32.onnx, int8.onnx and qat.json.")
def qat(model_name, ckpt, data_dir, calib, num_images, input_size, epochs, batch, lr_per_image, channel_scales, workers,
        threads, seed, eval_data, limit, out) -> None:
    """Quantization-aware fine-tuning: a checkpoint to an INT8 model that keeps more of its AP.

    Fine-tunes the weights through the rounding the INT8 file will do (fake quantization where
    quantize puts it, ranges from the calibration images), then exports and quantizes them as
    export and quantize do. Takes minutes per epoch on a CPU; quantize alone takes seconds.

    \b
    Example:
      edgedet qat --ckpt demo --data data/synth --eval data/synth-eval -o runs/qat
    """
    _require("qat", "torch", "onnx", *(("pycocotools",) if eval_data else ()))
    from pathlib import Path

    from .runtime.fileio import atomic_write_json
    from .workflows.qat_model import run_qat

    try:
        with TrainView() as view:
            result = run_qat(model_name, _resolve_ckpt(ckpt, model_name or "yolox-nano"), data_dir, out,
                             input_size=input_size, calib=calib, num_images=num_images, seed=seed, epochs=epochs,
                             batch=batch, lr_per_image=lr_per_image, channel_scales=channel_scales,
                             workers=workers, threads=threads, eval_data=eval_data, eval_limit=limit,
                             echo=click.echo, progress=view)
    except ValueError as e:
        raise _fail(e) from None
    ap = result.ap or {}
    rows = [(name, str(path), f"{ap[name]['AP']:.4f}" if name in ap else "-")
            for name, path in (("fp32", result.fp32), ("int8", result.int8))]
    click.echo(format_table(("model", "file", "AP"), rows))
    click.echo(f"loss {result.losses[0]:.3f} -> {result.losses[1]:.3f} over {result.steps} steps; "
               f"int8/fp32 latency {result.quantized.report()['latency_ratio']}; {result.seconds:.0f} s")
    atomic_write_json(Path(out) / "qat.json", result.report())


@cli.command("eval")
@click.argument("model")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="COCO-format dataset: DIR/annotations/SPLIT.json and DIR/images/SPLIT/.")
@click.option("--split", default="val", show_default=True, help="Which split of DIR to evaluate.")
@click.option("-m", "--model", "--model-name", "model_name", type=MODEL_NAME, default=None, metavar="NAME",
              help="For a .pth: the zoo model (default: from the checkpoint).")
@click.option("--input-size", type=IMAGE_SIZE, default=None, metavar="N|HxW", help="For a .pth: default from the checkpoint.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate the first N images.")
@click.option("--provider", type=PROVIDER, default="auto", show_default=True, envvar="EDGEDET_PROVIDER", metavar="NAME",
              help="For an .onnx model: " + PROVIDER_HELP)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, metavar="FILE", help="Write the metrics.")
def eval_cmd(model, data_dir, split, model_name, input_size, limit, provider, json_out) -> None:
    """COCO mAP of a .pth checkpoint or an .onnx model on a COCO-format split.

    Official settings: score threshold 0.001, class-aware NMS at IoU 0.65.

    \b
    Example:
      edgedet eval runs/train/best.pth --data data/synth-eval
      edgedet eval nano.onnx --data data/synth-eval --json metrics.json
    """
    is_onnx = str(model).lower().endswith(".onnx")
    _require("eval", "pycocotools", *(() if is_onnx else ("torch",)))
    if is_onnx and (input_size or model_name):
        raise click.UsageError("--input-size and -m/--model are for a .pth checkpoint; an .onnx model carries its "
                               "own input size and model name (export again for another size)")
    from .workflows.evaluate_model import EvalError, evaluate_model

    try:
        metrics = evaluate_model(_resolve_ckpt(model, model_name or "yolox-nano", "MODEL"), data_dir, split=split,
                                 model_name=model_name,
                                 input_size=input_size, limit=limit, provider=provider, json_out=json_out,
                                 progress=ProgressBar("eval"))
    except EvalError as e:
        raise _fail(e) from None
    click.echo(metrics.table())
    if metrics.failures:
        click.echo(f"left out ({len(metrics.failures)} images could not be read; scored on {metrics.images}):", err=True)
        for path, reason in metrics.failures:
            click.echo(f"  {path}: {reason}", err=True)
        sys.exit(1)


@cli.command()
@click.option("-o", "--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True, metavar="DIR",
              help="Where the demo writes its model and results.")
def demo(out) -> None:
    """Run the pipeline end to end on the embedded default, with no downloads.

    \b
    On the shipped yolox-nano demo checkpoint, in five steps:
      1. export to ONNX (simplified, with its parity check against PyTorch)
      2. quantize to INT8 on newly generated synthetic training images
      3. infer on the example images shipped in the package (annotated outputs)
      4. evaluate fp32 and INT8 on a newly generated synthetic validation set
      5. benchmark both, then print a closing table and where every file is

    Example: edgedet demo
    """
    _require("demo", *EXPORT_NEEDS, "pycocotools")
    from pathlib import Path

    from .workflows.demo import run_demo

    run_demo(Path(out), echo=click.echo)


def main() -> None:
    """The console entry point: one error boundary for every command. Click's own errors (usage,
    ClickException) keep their exit codes; anything else that escapes a command is printed as one
    line with exit status 1 (the traceback with -v); Ctrl-C exits 130."""
    verbose = any(a in ("-v", "--verbose") for a in sys.argv[1:])
    try:
        cli.main(prog_name="edgedet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # noqa: BLE001 -- the boundary: one line instead of a traceback
        if verbose:
            raise
        from .runtime.errors import first_line, ort_detail

        click.echo(f"Error: {ort_detail(first_line(e))} ({type(e).__name__}; -v shows the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
