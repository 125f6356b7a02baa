#!/usr/bin/env bash
# One command: compose the training shelves, train, export fp32 ONNX / QDQ int8 ONNX / int8 TFLite + manifest,
# then measure. Needs the build venv (torch, tensorflow-cpu, onnx) and the Grocery Store Dataset.
#   models/build/shelf/build.sh /work/shared/data/grocery-store [workdir]
set -euo pipefail
DATA=${1:?usage: build.sh GROCERY_STORE_DATASET_DIR [WORKDIR]}
WORK=${2:-/tmp/shelf-build}
PY=${BUILD_PY:-/work/buildenv/bin/python}
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$REPO"
# 3,500 composed shelves from the training split (seeds 1 and 2, 250 per shard) -- the shards the shipped model saw.
"$PY" models/build/shelf/make_dataset.py --data "$DATA" --out "$WORK/train" --count 2000 --seed 1 --workers 2
"$PY" models/build/shelf/make_dataset.py --data "$DATA" --out "$WORK/train" --count 1500 --seed 2 --workers 2
# The shipped run was time-boxed (--minutes 35 on one shared core: 1815 steps reached); a fixed step
# count makes the schedule independent of machine speed.
"$PY" models/build/shelf/train.py --data "$WORK/train" --out "$WORK/run" --steps "${STEPS:-1815}" --batch 16 \
    --lr 4e-3 --threads 1 --seed 0
"$PY" models/build/shelf/export.py --weights "$WORK/run/last.pt" --calib "$WORK/train" --calib-count 200 \
    --out models/shelf-detector
"$REPO/.venv/bin/python" -m bench.shelf_accuracy --data "$DATA" --model models/shelf-detector --shelves 200
"$REPO/.venv/bin/python" -m bench.shelf_latency --model models/shelf-detector --frames 300
