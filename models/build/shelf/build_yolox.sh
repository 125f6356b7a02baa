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
# multi-scale fine-tuning (320-416) on 1 thread under nice on a shared 2-vCPU machine (MINUTES=62); the step count
# reached is in MODEL_CARD.md.
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
"$TORCH_PY" models/build/shelf/export_yolox.py --weights "$WORK/run/last.pt" \
    --pretrained models/pretrained/coco-yolox-nano/yolox_nano.onnx --shards "$WORK/train" --out "$OUT" \
    --work "$WORK/export" --calib-count 200
"$PY" models/build/shelf/yolox_manifest.py --out "$OUT"
"$PY" models/build/shelf/quantize_yolox.py --model "$OUT" --calibration "$WORK/export/calib.npy"
"$TF_PY" models/build/shelf/tflite_yolox.py --onnx "$WORK/export/model_nchw.onnx" --calib "$WORK/export/calib.npy" \
    --work "$WORK/tf" --out "$OUT/model.int8.tflite"
"$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --add-tflite model.int8.tflite
TEX="$DATA/kolektorsdd/images $DATA/elpv-mono/images"
for SET in plain hard empty; do
    # shellcheck disable=SC2086
    "$PY" -m bench.shelf_accuracy --data "$DATA/grocery-store" --textures $TEX --set "$SET" --shelves 60 \
        --model "$OUT" --variants onnx-fp32 onnx-int8 tflite-int8 --out "$WORK/bench"
done
# The gate: an int8 file stays only if it keeps >= 99% of the fp32 mAP on both sets; the int8 ONNX is then the
# default. (2.1.0: the int8 ONNX failed, 89% / 75%, and was dropped; TFLite was not built.)
GATE="models/build/shelf/gate.py $WORK/bench/shelf_accuracy_hard.json $WORK/bench/shelf_accuracy.json"
# shellcheck disable=SC2086
"$PY" $GATE --variant tflite-int8 || "$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --drop tflite-int8
# shellcheck disable=SC2086
if "$PY" $GATE --variant onnx-int8; then
    "$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --default onnx-int8
else
    echo "int8 gate failed: onnx-fp32 stays the only variant"
    "$PY" models/build/shelf/yolox_manifest.py --out "$OUT" --drop onnx-int8
fi
"$PY" -m bench.shelf_latency --model "$OUT" --frames 150 --variants onnx-fp32
