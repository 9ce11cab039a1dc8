#!/usr/bin/env bash
# Create or reuse the project virtual environment at .venv and install the pinned dependencies.
# Idempotent: reinstalls only when setup.py changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
stamp=.venv/.m3_installed
want=$(cat setup.py | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[bootstrap] installing dependencies into .venv (torch takes about a minute)"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e ".[ros,dev]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch, nuscenes, numba, mmengine, rclpy" 
  echo "$want" > "$stamp"
fi
