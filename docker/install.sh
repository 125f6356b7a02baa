#!/usr/bin/env bash
# One install script for Dockerfile.rpi, Dockerfile.jetson and CI: system packages, a venv with the
# package and its runtimes, the shipped models, then the smoke check, so a broken step fails the build.
#
#   docker/install.sh --target rpi    --venv /opt/edge-agent/venv --src /src --models /opt/edge-agent/models
#   docker/install.sh --target jetson --ort-wheel /tmp/wheels/onnxruntime_gpu-*.whl ...
#   docker/install.sh --cpu-only      --venv "$(mktemp -d)/venv"      # CI: no apt, no hardware checks
set -euo pipefail

TARGET=cpu
APT=1
VENV=/opt/edge-agent/venv
SRC=$(pwd)
MODELS=""
ORT_WHEEL=""
CONSTRAINTS=""
SMOKE=1
MIN_MODELS=1
PYTHON=${PYTHON:-python3}

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

usage() {
    cat <<'USAGE'
usage: docker/install.sh [--target rpi|jetson|amd64|cpu] [--cpu-only] [--venv DIR] [--src DIR]
                         [--models DIR] [--ort-wheel PATH] [--constraints FILE] [--min-models N] [--no-smoke]

  --target rpi     arm64 Debian: LiteRT (XNNPACK) + onnxruntime CPU, opencv headless, V4L2 tools
  --target jetson  JetPack 6: NVIDIA's onnxruntime-gpu wheel (CUDA + TensorRT EPs), system OpenCV
                   with GStreamer (nvarguscamerasrc), numpy < 2 to match both
  --target amd64   any x86_64 box (docker/amd64.Dockerfile): the rpi set plus OpenVINO for Intel CPUs/iGPUs
  --target cpu     CI and plain installs: the rpi set
  --cpu-only       CI mode: --target cpu and no apt-get (nothing that needs root or hardware)
  --venv DIR       virtual environment to create (default /opt/edge-agent/venv)
  --src DIR        source tree holding pyproject.toml (default: current directory)
  --models DIR     model folders to smoke-check (default: SRC/models)
  --ort-wheel P    jetson: path of NVIDIA's onnxruntime-gpu wheel for this JetPack (required there)
  --constraints F  pinned versions (default docker/constraints/py311.txt, jetson-py310.txt on jetson)
  --min-models N   fail when fewer shipped models are found (default 1)
  --no-smoke       skip the smoke check (never in an image build)
USAGE
}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --target) TARGET=${2:?}; shift 2 ;;
            --cpu-only) TARGET=cpu; APT=0; shift ;;
            --venv) VENV=${2:?}; shift 2 ;;
            --src) SRC=${2:?}; shift 2 ;;
            --models) MODELS=${2:?}; shift 2 ;;
            --ort-wheel) ORT_WHEEL=${2:?}; shift 2 ;;
            --constraints) CONSTRAINTS=${2:?}; shift 2 ;;
            --min-models) MIN_MODELS=${2:?}; shift 2 ;;
            --no-smoke) SMOKE=0; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
    case "$TARGET" in rpi|jetson|amd64|cpu) ;; *) die "--target must be rpi, jetson, amd64 or cpu (got $TARGET)" ;; esac
    [ -f "$SRC/pyproject.toml" ] || die "$SRC has no pyproject.toml: pass --src with the source tree"
    MODELS=${MODELS:-$SRC/models}
    if [ -z "$CONSTRAINTS" ]; then
        case "$TARGET" in jetson) CONSTRAINTS=$SRC/docker/constraints/jetson-py310.txt ;;
                          *) CONSTRAINTS=$SRC/docker/constraints/py311.txt ;; esac
    fi
    [ -f "$CONSTRAINTS" ] || die "constraints file $CONSTRAINTS not found: pass --constraints"
    if [ "$TARGET" = jetson ] && [ -z "$ORT_WHEEL" ]; then
        die "--target jetson needs --ort-wheel (NVIDIA's onnxruntime-gpu wheel for this JetPack; PyPI has none for aarch64)"
    fi
}

apt_install() {
    # Slim images ship without apt lists; --no-install-recommends keeps the image small.
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    rm -rf /var/lib/apt/lists/*
}

system_packages() {
    [ "$APT" = 1 ] || { log "skipping system packages (--cpu-only)"; return 0; }
    local common=(ca-certificates tini v4l-utils libgomp1)
    case "$TARGET" in
        rpi|amd64|cpu)
            # libglib2.0-0: opencv-python-headless still links GLib.
            apt_install "${common[@]}" libglib2.0-0 ;;
        jetson)
            apt_install "${common[@]}" python3-venv python3-pip \
                gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
            # JetPack's own OpenCV (when the base has it) and Ubuntu's python3-opencv are built with
            # GStreamer; the PyPI wheels are not. The smoke check's --require-gstreamer verifies it.
            if ! python3 -c "import cv2" 2> /dev/null; then apt_install python3-opencv; fi ;;
    esac
}

create_venv() {
    log "creating $VENV with $("$PYTHON" --version 2>&1)"
    if [ "$TARGET" = jetson ]; then
        # --system-site-packages so the venv sees the GStreamer-enabled system OpenCV (cv2).
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$PYTHON" -m venv "$VENV"
    fi
}

# Images set PIP_NO_CACHE_DIR=1 in the Dockerfile; CI keeps its pip cache.
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check "$@"; }

python_packages() {
    # Every version comes from the constraints file (docker/constraints/lock.sh writes them).
    case "$TARGET" in
        rpi|cpu)
            pip_install -c "$CONSTRAINTS" "${SRC}[cpu,tflite,fleet]" ;;
        amd64)
            pip_install -c "$CONSTRAINTS" "${SRC}[cpu,tflite,openvino,fleet]" ;;
        jetson)
            # No `cpu` extra: NVIDIA's onnxruntime-gpu wheel and Ubuntu's GStreamer-enabled cv2 take its place,
            # so nothing is installed and then removed (which left `pip check` failing). numpy < 2 (pinned in
            # jetson-py310.txt): both are built against numpy 1.
            pip_install -c "$CONSTRAINTS" "${SRC}[fleet]" "$ORT_WHEEL" ;;
    esac
    # A broken or missing dependency fails the build here, not on the device.
    "$VENV/bin/python" -m pip check
}

smoke_check() {
    [ "$SMOKE" = 1 ] || { log "smoke check skipped (--no-smoke)"; return 0; }
    local args=(--models "$MODELS" --min-models "$MIN_MODELS")
    case "$TARGET" in
        rpi|cpu) args+=(--runtimes "onnxruntime,litert") ;;
        amd64) args+=(--runtimes "onnxruntime,litert,openvino") ;;
        # The build machine has no GPU: require the EPs to be compiled in, run the inference on CPU.
        jetson) args+=(--runtimes onnxruntime --require-providers "TensorrtExecutionProvider,CUDAExecutionProvider"
                       --require-gstreamer) ;;
    esac
    # Run from outside the source tree so the installed package, not the checkout, is what gets imported.
    (cd / && "$VENV/bin/python" "$SRC/docker/smoke_check.py" "${args[@]}")
}

main() {
    parse_args "$@"
    log "target=$TARGET venv=$VENV src=$SRC models=$MODELS"
    system_packages
    create_venv
    python_packages
    smoke_check
    log "done: $VENV/bin/edge-agent"
}

main "$@"
