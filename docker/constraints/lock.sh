#!/usr/bin/env bash
# Regenerate the image constraints files from pyproject.toml with pip's own resolver, binary wheels only:
#   py311.txt        amd64 + Raspberry Pi images: CPython 3.11, glibc 2.36 (python:3.11-slim-bookworm),
#                    '.[cpu,tflite,openvino,fleet]', resolved for x86_64 and aarch64 (fails if the two differ)
#   jetson-py310.txt Jetson image: CPython 3.10, glibc 2.35 (JetPack 6 / Ubuntu 22.04), the core package with
#                    numpy < 2 and the dependencies of onnxruntime-gpu 1.20.0; that wheel (NVIDIA's) and
#                    OpenCV (Ubuntu's, with GStreamer) are not on the package index
# Needs the package index (run by a maintainer, not by the images or CI).
#   docker/constraints/lock.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-.venv/bin/python}
OUT=docker/constraints
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

platforms() {  # every manylinux tag a glibc <= $2 system accepts, for arch $1
    local arch=$1 max=$2 minor
    printf -- '--platform manylinux2014_%s ' "$arch"
    for minor in $(seq 17 "$max"); do printf -- '--platform manylinux_2_%s_%s ' "$minor" "$arch"; done
}

resolve() {  # resolve NAME PYVER GLIBC_MINOR ARCH REQUIREMENT... -> $work/NAME.txt (name==version, sorted)
    local name=$1 pyver=$2 glibc=$3 arch=$4; shift 4
    # shellcheck disable=SC2046
    "$PY" -m pip install -q --dry-run --ignore-installed --only-binary=:all: --implementation cp \
        --python-version "$pyver" $(platforms "$arch" "$glibc") --target "$work/t-$name" \
        --report "$work/$name.json" "$@"
    "$PY" - "$work/$name.json" > "$work/$name.txt" <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
pins = {i["metadata"]["name"]: i["metadata"]["version"] for i in report["install"]}
pins.pop("edge-agent", None)
print("\n".join(f"{k}=={v}" for k, v in sorted(pins.items(), key=lambda kv: kv[0].lower())))
PYEOF
}

resolve x86 3.11 36 x86_64 ".[cpu,tflite,openvino,fleet]"
resolve arm 3.11 36 aarch64 ".[cpu,tflite,openvino,fleet]"
cmp -s "$work/x86.txt" "$work/arm.txt" || { diff "$work/x86.txt" "$work/arm.txt" >&2; echo "lock.sh: x86_64 and aarch64 resolve differently" >&2; exit 2; }
# NVIDIA's onnxruntime-gpu 1.20.0 for JetPack 6 is built from the same setup.py as PyPI's onnxruntime 1.20.0,
# so resolving the latter pins the wheel's dependencies (coloredlogs, flatbuffers, protobuf, sympy...); the
# onnxruntime line itself is dropped, the image installs NVIDIA's wheel in its place.
resolve jetson 3.10 35 aarch64 ".[fleet]" "numpy<2" "onnxruntime==1.20.0"
grep -v '^onnxruntime==' "$work/jetson.txt" > "$work/jetson.deps" && mv "$work/jetson.deps" "$work/jetson.txt"

{
    echo "# Pinned set for the amd64 and Raspberry Pi images (docker/install.sh: -c this file). Written by"
    echo "# docker/constraints/lock.sh: CPython 3.11, glibc <= 2.36, binary wheels, same set on x86_64 and aarch64."
    cat "$work/x86.txt"
} > "$OUT/py311.txt"
{
    echo "# Pinned set for the Jetson image (JetPack 6: CPython 3.10, glibc 2.35), numpy < 2 for NVIDIA's"
    echo "# onnxruntime-gpu and Ubuntu's OpenCV. Written by docker/constraints/lock.sh."
    cat "$work/jetson.txt"
} > "$OUT/jetson-py310.txt"
echo "lock.sh: wrote $OUT/py311.txt ($(grep -vc '^#' "$OUT/py311.txt") pins) and $OUT/jetson-py310.txt" >&2
