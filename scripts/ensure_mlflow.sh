#!/usr/bin/env bash
# An MLflow tracking server for the model-registry tests, in its own venv (MLflow pins its own Flask,
# SQLAlchemy and pandas; the agent never imports it, the device resolves models:/ over MLflow's REST API).
#   scripts/ensure_mlflow.sh            -> prints the mlflow executable (installs it on first use)
# Tests start it as: mlflow server --backend-store-uri sqlite:///DB --artifacts-destination DIR
#                    --serve-artifacts --host 127.0.0.1 --port PORT
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MLFLOW_VENV:-.venv-mlflow}
VERSION=${MLFLOW_VERSION:-3.17.2}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/mlflow" ] || ! "$VENV/bin/python" -c "import mlflow, sys; sys.exit(mlflow.__version__ != '$VERSION')" 2> /dev/null; then
    echo "ensure_mlflow: installing mlflow $VERSION into $VENV" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "mlflow==$VERSION" >&2
fi
echo "$PWD/$VENV/bin/mlflow"
