#!/usr/bin/env bash
# Run ON the GPU machine, from the repository root, after `bash benchmarks/gpu/prepare_wheels.sh` here:
#   run(command="bash benchmarks/gpu/run_on_device.sh", carry=["benchmarks/gpu/wheels"], timeout_s=570)
# Installs the carried wheels and wm-hub itself (no index: the machine is offline), then runs every GPU benchmark,
# each within its own time budget so that the whole script ends within 8 minutes: backbone.py (VQ and generation
# steps), verification.py (one image and best-of-8 through the pipelines), training.py (LoRA FDM steps). Each
# rewrites its JSON under $OUT after every measurement (the only files the device tool copies back), so a budget
# cut keeps what was measured. BUDGETS="backbone verification training" in seconds overrides the defaults.
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
read -r BACKBONE_S VERIFICATION_S TRAINING_S <<<"${BUDGETS:-150 180 120}"
status=0
run() {  # NAME BUDGET ARGS...: one benchmark, stopped (SIGINT, then KILL) at its budget
    local name=$1 budget=$2
    shift 2
    echo "== $name (budget ${budget} s)"
    PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=10 "$budget" python3 "benchmarks/gpu/$name.py" "$@" \
        2>&1 | tee "$OUT/${name}_gpu.log" || { echo "$name stopped or failed (exit $?)"; status=1; }
}
run backbone "$BACKBONE_S" --caches static --batches 1 8
run verification "$VERIFICATION_S"
run training "$TRAINING_S"
exit $status
