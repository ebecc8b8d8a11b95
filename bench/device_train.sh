#!/usr/bin/env bash
# One lent-GPU sitting (library `device` tool): the training-throughput bench on the GPU, then the
# default recipe continued from weights/default for TRAIN_S seconds. The data travels as a
# letterboxed 128 px copy (bench/shrink_data.py, proven identical item by item) because the
# working tree that travels is limited to 64 MiB; kornia, absent there, travels unpacked.
# Carried: .devcarry/{drawings128.tar.xz,site312.tar.xz,vgg16_hed_to_relu3_1.safetensors}, made by
# bench/device_pack.sh. The run folder stays on that machine: the best validated weights come back
# in $OUT (split in 15 MB parts: cat model.safetensors.part* > model.safetensors).
# Usage: OUT=folder TRAIN_S=400 BATCH=32 DEVICE=cuda bash bench/device_train.sh
#   INIT=            train from scratch instead of from weights/default (INIT=folder: another artifact)
#   EXTRA_SETS="--set k=v ..."   more config overrides (e.g. --set data.augment_on=device: a() and
#                the TPS batch-wise on the GPU, the workers only draw them); BENCH_S=0 skips the
#                throughput bench, TRIPLETS_S=0 the triplet bench (bench/triplet_time.py, ~20 s)
#   LAST=1           also the newest checkpoint's weights (last_config.json, last.safetensors.part*)
# Back in $OUT: train.log, logs.tgz (the bench's figures, summary.json, the TensorBoard events),
# model_config.json + model.safetensors.part* (the best), and with LAST=1 the newest.
set -u
cd "$(dirname "$0")/.."
t0=$(date +%s)
say() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
OUT=${OUT:?} TRAIN_S=${TRAIN_S:-400} BATCH=${BATCH:-32} DEVICE=${DEVICE:-cuda} WORKERS=${WORKERS:-12}
SCRATCH=${SCRATCH:-/tmp/sc}
PY=${PY:-python3}
mkdir -p "$SCRATCH/site"
if [ ! -d "$SCRATCH/site/kornia" ]; then tar xJf .devcarry/site312.tar.xz -C "$SCRATCH/site" || exit 3; fi
if [ ! -d "$SCRATCH/drawings128" ]; then tar xJf .devcarry/drawings128.tar.xz -C "$SCRATCH" || exit 3; fi
say "unpacked"
export PYTHONPATH="$PWD/src:$SCRATCH/site" PYTHONUNBUFFERED=1
VGG="$PWD/.devcarry/vgg16_hed_to_relu3_1.safetensors"
$PY -c "import torch, kornia; print('torch', torch.__version__, 'kornia', kornia.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())" || exit 4
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
if [ "${BENCH_S:-120}" != 0 ]; then
  say "bench"
  timeout -k 5 "${BENCH_S:-120}" $PY bench/train_throughput.py --config configs/default.yaml --device "$DEVICE" \
    --set loss.vgg_weights="$VGG" --batch "$BATCH" --warmup 5 --repeats 20 --variant workers= \
    --variant dev=data.augment_on=device --json "$OUT/bench_gpu.json" > "$OUT/bench_gpu.txt" 2>&1
  say "bench rc=$?"
fi
if [ "${TRIPLETS_S:-60}" != 0 ]; then
  # where the triplets are cheaper: per example in a worker, or batch-wise on the GPU
  # (data.augment_on=device); also how far the GPU's triplets are from the workers'
  timeout -k 5 "${TRIPLETS_S:-60}" $PY bench/triplet_time.py --data "$SCRATCH/drawings128" --device "$DEVICE" \
    --batch "$BATCH" --n 128 --repeats 2 > "$OUT/bench_gpu.triplets.txt" 2>&1
  say "triplet bench rc=$?"
fi
rm -rf "$SCRATCH/run"
INIT=${INIT-weights/default}
INIT_ARGS=()
[ -n "$INIT" ] && INIT_ARGS=(--init-from "$INIT")
timeout -s INT -k 15 "$TRAIN_S" $PY -c "import sys; from sketchcolor.cli import main; sys.argv[0]='sketchcolor'; sys.exit(main())" \
  train --config configs/default.yaml --data "$SCRATCH/drawings128" --out "$SCRATCH/run" ${INIT_ARGS[@]+"${INIT_ARGS[@]}"} \
  --set loss.vgg_weights="$VGG" --set train.device="$DEVICE" --set train.batch_size="$BATCH" \
  --set data.num_workers="$WORKERS" --set train.steps=200000 --set train.val_every=${VAL_EVERY:-1000} \
  --set train.checkpoint_every=${VAL_EVERY:-1000} --set train.image_every=100000 --set train.log_every=100 ${EXTRA_SETS:-} \
  > "$OUT/train.log" 2>&1
say "train rc=$?"
B="$SCRATCH/run/best"  # the best validated weights (model/ is written only when a sitting ends normally)
if [ -f "$B/model.safetensors" ]; then
  cp "$B/config.json" "$OUT/model_config.json"
  split -b 15M -d "$B/model.safetensors" "$OUT/model.safetensors.part"
  sha256sum "$B/model.safetensors" >> "$OUT/train.log"
fi
# LAST=1: also the newest checkpoint (its folder is an artifact too: config.json + the EMA's
# model.safetensors), since the best is often the first validation and says nothing of the end
NEWEST=$(ls -d "$SCRATCH"/run/checkpoints/step_* 2>/dev/null | sort | tail -1)
if [ "${LAST:-0}" = 1 ] && [ -n "$NEWEST" ] && [ -f "$NEWEST/model.safetensors" ]; then
  cp "$NEWEST/config.json" "$OUT/last_config.json"
  split -b 15M -d "$NEWEST/model.safetensors" "$OUT/last.safetensors.part"
  echo "last: $(basename "$NEWEST") $(sha256sum < "$NEWEST/model.safetensors")" >> "$OUT/train.log"
fi
# the small files in one archive: at most 8 files come back from the lent machine
L="$SCRATCH/logs_out" && rm -rf "$L" && mkdir -p "$L"
cp "$SCRATCH/run/summary.json" "$SCRATCH"/run/logs/events.out.tfevents.* "$L/" 2>/dev/null
mv "$OUT"/bench_gpu.* "$L/" 2>/dev/null
tar czf "$OUT/logs.tgz" -C "$L" .
ls -la "$SCRATCH/run" "$SCRATCH/run/checkpoints" "$SCRATCH/run/model" 2>&1 | tail -20
say "done"
