#!/usr/bin/env bash
# Run ON the GPU machine, from the repository root, after `bash benchmarks/gpu/prepare_wheels.sh` here:
#   run(command="bash benchmarks/gpu/run_on_device.sh", carry=["benchmarks/gpu/wheels"], timeout_s=570)
# Installs the carried wheels and wm-hub itself (no index: the machine is offline), then runs backbone.py with its
# JSON and log under $OUT (the only files the device tool copies back). Extra arguments go to backbone.py.
set -euo pipefail
WHEELS=benchmarks/gpu/wheels
if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "no wheels in $WHEELS: run benchmarks/gpu/prepare_wheels.sh first and carry that folder" >&2
    exit 2
fi
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q --no-index --no-deps --no-cache-dir "$WHEELS"/*.whl
if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .; then
    echo "editable install of wm-hub failed; importing it from the working tree instead" >&2
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONUNBUFFERED=1 python3 benchmarks/gpu/backbone.py "$@" 2>&1 | tee "$OUT/backbone_gpu.log"
