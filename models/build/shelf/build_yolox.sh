#!/usr/bin/env bash
# The default shelf detector (2.x): the COCO YOLOX-Nano fine-tuned class-agnostically on composed shelves, then
# fp32 ONNX / U8S8 int8 ONNX / int8 TFLite + manifest, an accuracy gate (int8 >= 99% of fp32 mAP on the held-out
# hard shelves) and the measurements of MODEL_CARD.md.
#   models/build/shelf/build_yolox.sh /work/shared/data [workdir]
# DATA holds grocery-store/ (MIT: products) and, for the benchmarks only, kolektorsdd/ and elpv-mono/ (CC BY-NC-SA
# 4.0 texture photos: never composed into training frames; walls and clutter there are drawn by compose_walls.py).
# Two build venvs (torch and TensorFlow do not share one):
#   TORCH_PY: torch==2.14.1 torchvision==0.29.1 onnx2torch onnx onnxruntime
#   TF_PY:    tensorflow-cpu==2.21.0 tf-keras onnx2tf onnx onnxruntime onnx-graphsurgeon sng4onnx psutil ai-edge-litert
# The shipped run (2.1.0): 6,000 composed frames (10% without products, of the rest 75% hard), 62 minutes of
# multi-scale fine-tuning (320-416) on 1 thread under nice on a shared 2-vCPU machine (MINUTES=62); 2.2.0 adds a
# second, negative-weighted stage (below); the step counts reached are in MODEL_CARD.md.
set -euo pipefail
DATA=${1:?usage: build_yolox.sh DATA_DIR [WORKDIR]}
WORK=${2:-/tmp/shelf-clean}
TORCH_PY=${TORCH_PY:-/work/venvs/shelfbuild/bin/python}
TF_PY=${TF_PY:-/work/venvs/shelftf/bin/python}
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
PY="$REPO/.venv/bin/python"
OUT="$REPO/models/shelf-detector"
cd "$REPO"
# Composition runs beside the training, which reloads the shards as they appear.
"$PY" models/build/shelf/make_hard_dataset.py --data "$DATA" --out "$WORK/train" --count 6000 --seed 1 &
"$TORCH_PY" models/build/shelf/finetune.py --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx \
    --data "$WORK/train" --out "$WORK/run" --minutes "${MINUTES:-62}" --batch 8 --threads 1 \
    --sizes 320 320 352 384 416
wait
# Stage 2 (2.2.0): more weight on negatives. 1,600 more frames (70% without products: drawn textures filling the
# frame or hard shelves with drawn clutter left empty; of the rest 90% hard), beside the 6,000 of stage 1, and 30%
# of every batch drawn from the product-free frames; from stage 1's checkpoint at a low learning rate, 30 minutes
# on 2 threads (MINUTES2=30). Still no photo but the MIT products: KolektorSDD / ELPV stay test-only.
mkdir -p "$WORK/train-neg"
ln -sf "$WORK"/train/shard-*.npz "$WORK/train-neg/"
for SEED in 2 3; do
    "$PY" models/build/shelf/make_hard_dataset.py --data "$DATA" --out "$WORK/train-neg" --count 800 --seed "$SEED" \
        --hard-share 0.9 --empty-share 0.7 &
done
wait
"$TORCH_PY" models/build/shelf/finetune.py --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx \
    --data "$WORK/train-neg" --out "$WORK/run2" --minutes "${MINUTES2:-30}" --batch 8 --threads 2 --lr 2e-4 \
    --sizes 320 320 352 384 416 --init "$WORK/run/last.pt" --empty-share 0.3 --seed 2
# Stage 3 (2.5.0): close-ups. Real photos of one product held up or standing in front of a shelf found it in a
# quarter of them: the rows of the hard composer keep a tall pack under a third of a landscape frame's width.
# 1,200 frames with 60% close-ups (compose_closeup.py: 1-3 products a third of the frame height to more than all
# of it, in landscape to portrait frames, stocked shelves or clutter behind, a hand) and 1,000 of the stage-1
# mix with more product-free frames (30%); from stage 2's checkpoint, 20% of every batch product-free, 40 minutes
# on 1 thread (MINUTES3). The shipped 2.5.0 continued from 2.4.0's model.onnx instead (weights_from_onnx.py: the
# same weights, max |diff| 2e-6), as the stage-2 checkpoint was no longer at hand.
mkdir -p "$WORK/train-close"
"$PY" models/build/shelf/make_hard_dataset.py --data "$DATA" --out "$WORK/train-close" --count 1200 --seed 11 \
    --hard-share 0.75 --empty-share 0.15 --closeup-share 0.6 &
"$PY" models/build/shelf/make_hard_dataset.py --data "$DATA" --out "$WORK/train-close" --count 1000 --seed 12 \
    --hard-share 0.85 --empty-share 0.3 &
"$TORCH_PY" models/build/shelf/finetune.py --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx \
    --data "$WORK/train-close" --out "$WORK/run3" --minutes "${MINUTES3:-40}" --batch 8 --threads 1 --lr 2e-4 \
    --sizes 320 320 352 384 416 --init "$WORK/run2/last.pt" --empty-share 0.2 --seed 3
wait
# Stage 3b: stage 3 alone put a frame-filling box on 83% of the real product-free photos (a large thing filling the
# frame had become a product, as in 2.1.0). 600 frames of 70% product-free shelves and textures, 800 close-ups
# where half the large things in front are plain slabs of drawn texture cut like a package (unlabelled), then
# 18 minutes on 2 threads from stage 3 with 35% of every batch product-free (MINUTES3B).
for SEED in 13 14; do
    "$PY" models/build/shelf/make_hard_dataset.py --data "$DATA" --out "$WORK/train-close" --count 300 --seed "$SEED" \
        --hard-share 0.9 --empty-share 0.7 &
done
for SEED in 15 16; do
    "$PY" models/build/shelf/make_hard_dataset.py --data "$DATA" --out "$WORK/train-close" --count 400 --seed "$SEED" \
        --hard-share 0.85 --empty-share 0.2 --closeup-share 0.8 --slab-share 0.5 &
done
"$TORCH_PY" models/build/shelf/finetune.py --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx \
    --data "$WORK/train-close" --out "$WORK/run3b" --minutes "${MINUTES3B:-18}" --batch 8 --threads 2 --lr 1e-4 \
    --sizes 320 320 352 384 416 --init "$WORK/run3/last.pt" --empty-share 0.35 --seed 4
wait
"$TORCH_PY" models/build/shelf/export_yolox.py --weights "$WORK/run3b/last.pt" \
    --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx --shards "$WORK/train-close" --out "$OUT" \
    --work "$WORK/export" --calib-count 200
"$PY" models/build/shelf/yolox_manifest.py --out "$OUT"
TEX="$DATA/kolektorsdd/images $DATA/elpv-mono/images"
# The score threshold: the lowest count MAE on a composed validation set (drawn walls and clutter, its own seed);
# the held-out hard shelves and real photos are only reported at each threshold (2.2.0: 0.35, as before).
# shellcheck disable=SC2086
"$PY" -m bench.shelf_threshold --data "$DATA/grocery-store" --model "$OUT" --textures $TEX --out "$WORK/bench"
# Since 2.5.1 it also chooses the nested-box threshold of the NMS (none, 0.5 ... 0.8; 2.5.1: 0.5).
CHOSEN="import json, sys; c = json.load(open(sys.argv[1])); print(c['chosen'], c['nested'] or '')"
read -r SCORE NESTED < <("$PY" -c "$CHOSEN" "$WORK/bench/shelf_threshold.json")
"$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --score "$SCORE" ${NESTED:+--nested "$NESTED"}
"$PY" models/build/shelf/quantize_yolox.py --model "$OUT" --calibration "$WORK/export/calib.npy"
"$TF_PY" models/build/shelf/tflite_yolox.py --onnx "$WORK/export/model_nchw.onnx" --calib "$WORK/export/calib.npy" \
    --work "$WORK/tf" --out "$OUT/model.int8.tflite"
# The ONNX files take any input height (a 1280x720 frame runs as 416x256); the TFLite file stays 416x416.
"$PY" models/build/shelf/dynamic_input.py "$OUT/model.onnx" "$OUT/model.int8.onnx"
"$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --add-tflite model.int8.tflite
for SET in plain hard empty closeup; do
    # shellcheck disable=SC2086
    "$PY" -m bench.shelf_accuracy --data "$DATA/grocery-store" --textures $TEX --set "$SET" --shelves 60 \
        --model "$OUT" --variants onnx-fp32 onnx-int8 tflite-int8 --out "$WORK/bench"
done
# The gate: an int8 file stays only if it keeps >= 99% of the fp32 mAP on both sets; the int8 ONNX is then the
# default. (2.1.0: the int8 ONNX failed, 89% / 75%, and was dropped; TFLite was not built. 2.3.0, with the range
# rules of edge_agent/runtime/quant_ranges.py in both: int8 ONNX 99.8% / 100.4%, TFLite 100.0% / 100.3%.)
GATE="models/build/shelf/gate.py $WORK/bench/shelf_accuracy_hard.json $WORK/bench/shelf_accuracy.json"
# shellcheck disable=SC2086
"$PY" $GATE --variant tflite-int8 || "$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --drop tflite-int8
# shellcheck disable=SC2086
# 2.5.0: the int8 ONNX passed this gate but put 0.30 boxes on each real product-free photo (fp32 0.00, TFLite
# 0.03; tried: head towers in float 0.47, extreme ranges 0.23), so the fp32 file became the default again. 2.5.1:
# quantize_yolox.py keeps the stride <= 4 stages float too (as the TFLite file does): 0.07.
if "$PY" $GATE --variant onnx-int8; then
    "$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --default "${DEFAULT_VARIANT:-onnx-fp32}"
else
    echo "int8 gate failed: onnx-fp32 stays the only variant"
    "$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --drop onnx-int8
fi
"$PY" -m bench.shelf_latency --model "$OUT" --frames 150 --variants onnx-fp32
