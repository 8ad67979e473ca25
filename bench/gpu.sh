#!/usr/bin/env bash
# The GPU path in one run: bench/gpu.sh [OUT.json]  (default gpu_bench.json)
#
# With CUDA (about 7 minutes on one H200) it measures, each step under its own time limit:
#   train_step  `base` training step at 256 px, batch 64: fp32, bf16 autocast, bf16 +
#               channels_last, + torch.compile (images/s, and % of 2,800 images/s, an H200's
#               ceiling for this model at 256 px)
#   colorize    bench/colorize.py on CUDA: `base` at a 256 px working size, 360p and 720p,
#               model only and end to end (decode, model, encode); the 720p target is 120 frames/s
#   loader      bench/loader.py's training path at 256 px with 8 and 16 DataLoader workers
#   ray_train   `vidcolor train` of exp5 (`base`, no pretrained start) for one epoch through
#               Ray Train on the GPU, on generated 256 px shards (frames/s of the training steps)
# and writes everything into one JSON ({"gpu": ..., "steps": {name: {rc, seconds, result}}}).
# Without CUDA it runs the same four steps, cut down to CPU sizes (tiny model, 64 px, a few
# steps), to check the script and every benchmark's branches; the figures then mean nothing.
# A step that fails is recorded with its exit status and the end of its log; the script goes on.
#
# Python: $PY, else the checkout's .venv, else python3. Every step needs the project's packages
# (`make setup`); ray_train also needs Ray.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT_JSON=$(realpath -m "${1:-gpu_bench.json}")
PY=${PY:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3 )}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vidcolor-gpu-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  MODE=gpu
  TRAIN=(--device cuda --sizes base --res 256 --batch 64 --steps 10)
  COLORIZE=(--device cuda --model-size base --frames 256 --repeat 1)
  LOADER=(--sizes 256 --workers 8,16 --train-steps 400 --repeat 1 --no-flows)
  SHARD_SIZE=256; RAY_SET=(--set size=base --set steps_per_epoch=200 --set batch_size=16); GPU_FLAG=--gpu
  RAY_FRAMES=$((200 * 16 * 4))  # steps x batch x seq_len
  LIMITS=(240 120 120 150)
else
  MODE=cpu
  TRAIN=(--device cpu --sizes tiny --res 64 --batch 4 --steps 2 --variants fp32)
  COLORIZE=(--device cpu --model-size tiny --frames 16 --repeat 1)
  LOADER=(--sizes 64 --workers 0,1 --train-steps 10 --repeat 1)
  SHARD_SIZE=64; RAY_SET=(--set size=tiny --set steps_per_epoch=4 --set batch_size=4); GPU_FLAG=
  RAY_FRAMES=$((4 * 4 * 4))
  LIMITS=(120 240 180 240)
fi
echo "bench/gpu.sh: mode $MODE, python $PY, writing $OUT_JSON"

step() {  # step NAME LIMIT_S CMD...: run with a time limit, log to $WORK/NAME.log, time it
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  local rc=$?
  echo "$rc $((SECONDS - t0))" >"$WORK/$name.rc"
  tail -n 25 "$WORK/$name.log"
  echo "   -> exit $rc after $((SECONDS - t0)) s"
}

ray_train() {  # generated shards at $SHARD_SIZE px, then one epoch of exp5 through Ray Train
  "$PY" - "$WORK/videos" "$SHARD_SIZE" <<'EOF' || return 1
import sys
from data_shards.synthetic import make_demo_videos
make_demo_videos(sys.argv[1], videos=6, seconds=4.0, size=max(96, int(sys.argv[2])), fps=12, seed=0)
EOF
  "$PY" -m study shard "$WORK/videos" --out "$WORK/shards" --size "$SHARD_SIZE" --clip-len 8 || return 1
  "$PY" -m study train --shards "$WORK/shards" --preset exp5 --out "$WORK/ray_train" --workers 1 $GPU_FLAG \
    --set transfer=false --set epochs=1 --set seq_len=4 --set val_batches=2 --set val_batch_size=4 "${RAY_SET[@]}" \
    || return 1
  cp "$WORK/ray_train/best/train_state.json" "$WORK/ray_train.json"
}

step train_step "${LIMITS[0]}" "$PY" bench/train_step.py "${TRAIN[@]}" --json "$WORK/train_step.json"
step colorize "${LIMITS[1]}" "$PY" bench/colorize.py "${COLORIZE[@]}" --json "$WORK/colorize.json"
step loader "${LIMITS[2]}" "$PY" bench/loader.py "${LOADER[@]}" --json "$WORK/loader.json"
export -f ray_train; export WORK PY SHARD_SIZE GPU_FLAG
RAY_SET_STR="${RAY_SET[*]}"; export RAY_SET_STR
step ray_train "${LIMITS[3]}" bash -c 'RAY_SET=($RAY_SET_STR); ray_train'

"$PY" - "$WORK" "$OUT_JSON" "$MODE" "$RAY_FRAMES" <<'EOF'
"""Merge the steps' JSON (and exit status, seconds, log tail) into one document."""
import json, platform, sys
from pathlib import Path

import torch

work, out, mode, ray_frames = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
CEILING = 2800.0  # images/s: an H200's ceiling for `base` at 256 px
doc = {"mode": mode, "host": platform.node(), "torch": torch.__version__,
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "steps": {}}
for name in ("train_step", "colorize", "loader", "ray_train"):
    rc_file = work / f"{name}.rc"
    rc, seconds = (int(x) for x in rc_file.read_text().split()) if rc_file.exists() else (None, None)
    result = json.loads((work / f"{name}.json").read_text()) if (work / f"{name}.json").exists() else None
    entry = {"rc": rc, "seconds": seconds, "result": result}
    if rc != 0:
        log = work / f"{name}.log"
        entry["log_tail"] = log.read_text(errors="replace")[-3000:] if log.exists() else None
    doc["steps"][name] = entry
train = (doc["steps"]["train_step"]["result"] or {}).get("rows") or []
doc["train_images_per_s"] = {r["variant"]: round(r["images_per_s"], 1) for r in train}
if mode == "gpu":
    doc["train_of_ceiling"] = {v: round(ips / CEILING, 3) for v, ips in doc["train_images_per_s"].items()}
state = doc["steps"]["ray_train"]["result"]
if state:
    m = state.get("metrics") or {}
    doc["ray_train_epoch"] = {k: m.get(k) for k in ("train_s", "epoch_s", "val_rmse_rgb", "world_size")}
    if m.get("train_s"):
        doc["ray_train_epoch"]["train_frames_per_s"] = round(ray_frames / m["train_s"], 1)
out.write_text(json.dumps(doc, indent=2, default=str))
failed = [k for k, v in doc["steps"].items() if v["rc"] != 0]
print(f"wrote {out}; steps failed: {', '.join(failed) or 'none'}")
sys.exit(1 if failed else 0)
EOF
