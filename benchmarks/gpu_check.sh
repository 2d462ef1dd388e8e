#!/usr/bin/env bash
# The GPU paths end to end, for a machine with an NVIDIA GPU (under 8 minutes on one):
#   1. train yolox-s for a few hundred steps with fp16 AMP on CUDA (loss finite and falling)
#   2. the same for 2-process DDP over NCCL when two GPUs are visible
#   3. export (fp32, fp16), quantize to int8 QDQ (--target tensorrt)
#   4. infer and bench each model with the CUDA and the TensorRT provider (--strict: a provider that is
#      not obtained is an error, never a silent CPU run), build a TensorRT engine
#   5. print one table
# Needs: a CUDA build of torch and onnxruntime-gpu (with TensorRT libraries for the TensorRT rows) in the
# environment that runs it, and edgedet installed there (pip install -e ".[toolkit]" with onnxruntime-gpu).
#
#     bash benchmarks/gpu_check.sh [WORKDIR]        # default WORKDIR: a new temporary folder
set -euo pipefail

WORK="${1:-$(mktemp -d -t edgedet-gpu-check-XXXX)}"
PY="${PYTHON:-python}"
EDGEDET=("$PY" -c "from edgedet.cli import main; main()")
mkdir -p "$WORK"
echo "gpu_check: working in $WORK"

"$PY" - <<'EOF'
import sys
import torch
import onnxruntime as ort
problems = []
if not torch.cuda.is_available():
    problems.append(f"torch {torch.__version__} sees no CUDA device")
if "CUDAExecutionProvider" not in ort.get_available_providers():
    problems.append(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu)")
if problems:
    sys.exit("gpu_check: cannot run: " + "; ".join(problems))
print(f"gpu_check: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
      f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})")
EOF

"${EDGEDET[@]}" data synth "$WORK/synth" --train 512 --val 32 --size 640 --seed 0 >/dev/null

# 1. fp16 AMP on one GPU: 8 epochs of 32 steps at batch 16 (256 steps).
"${EDGEDET[@]}" train -m yolox-s --data "$WORK/synth" --device cuda --precision fp16 --epochs 8 --batch 16 \
    --input-size 640 --workers 4 --limit 32 --eval-interval 8 --no-aug-epochs 2 --warmup-epochs 1 \
    --lr-per-image 0.000625 -o "$WORK/train-1gpu"

# 2. DDP over NCCL when there are two GPUs.
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
    "${EDGEDET[@]}" train -m yolox-s --data "$WORK/synth" --device cuda --devices 2 --precision fp16 --epochs 2 \
        --batch 16 --input-size 640 --workers 2 --limit 16 --eval-interval 2 --no-aug-epochs 1 --warmup-epochs 1 \
        -o "$WORK/train-ddp"
fi

# 3. the three precisions
"${EDGEDET[@]}" export -m yolox-s --ckpt "$WORK/train-1gpu/last.pth" -o "$WORK/s.onnx"
"${EDGEDET[@]}" export -m yolox-s --ckpt "$WORK/train-1gpu/last.pth" --fp16 -o "$WORK/s-fp16.onnx"
"${EDGEDET[@]}" quantize "$WORK/s.onnx" --calib "$WORK/synth" --num-images 64 --target tensorrt -o "$WORK/s-int8.onnx"

# 4. every model on CUDA and TensorRT, strict; an engine built ahead of time
for model in s s-fp16 s-int8; do
    for provider in cuda tensorrt; do
        "${EDGEDET[@]}" infer "$WORK/$model.onnx" "$WORK/synth/images/val" --provider "$provider" --strict \
            --trt-cache "$WORK/trt-$model" -o "$WORK/infer-$model-$provider" --no-save-images
        "${EDGEDET[@]}" bench "$WORK/$model.onnx" --provider "$provider" --iters 50 \
            --json "$WORK/bench-$model-$provider.json"
    done
done
"${EDGEDET[@]}" build-engine "$WORK/s.onnx" --fp16 --cache-dir "$WORK/engine-s-fp16"

# 5. one table; fails when the loss did not fall or a bench ran on another provider than asked
"$PY" - "$WORK" "$GPUS" <<'EOF'
import json, math, sys
from pathlib import Path
work, gpus = Path(sys.argv[1]), int(sys.argv[2])
failed = []
runs = [("1 GPU", work / "train-1gpu")] + ([("DDP 2 GPUs", work / "train-ddp")] if gpus >= 2 else [])
print(f"{'training':<12} {'steps':>6} {'first loss':>11} {'last loss':>10}  status")
for label, folder in runs:
    losses = [r["loss"] for r in map(json.loads, (folder / "train_log.jsonl").read_text().splitlines()) if "loss" in r]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    ok = all(math.isfinite(v) for v in losses) and last < first
    failed += [] if ok else [f"training {label}: loss {first:.3f} -> {last:.3f}"]
    print(f"{label:<12} {len(losses):>6} {first:>11.3f} {last:>10.3f}  {'ok' if ok else 'FAILED'}")
print(f"\n{'model':<8} {'provider':<10} {'p50 ms':>8} {'img/s':>8}  runs on")
for model in ("s", "s-fp16", "s-int8"):
    for provider, full in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        result = json.loads((work / f"bench-{model}-{provider}.json").read_text())
        row = result["results"][0]
        got = str(row.get("provider", "?"))
        ok = got in (full, provider, full.replace("ExecutionProvider", ""))
        failed += [] if ok else [f"bench {model} {provider}: ran on {got}"]
        print(f"{model:<8} {provider:<10} {row.get('p50_ms', float('nan')):>8.2f} "
              f"{row.get('images_per_s', float('nan')):>8.1f}  {got}{'' if ok else '  FAILED'}")
if failed:
    sys.exit("gpu_check FAILED: " + "; ".join(failed))
print("\ngpu_check: all GPU paths ran")
EOF
