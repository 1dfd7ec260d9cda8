#!/usr/bin/env bash
# Run HERE (where PyPI is reachable), from the repository root, before a device run.
# Downloads the wheels that the GPU machine (Python 3.12) lacks, at the versions installed here, into
# benchmarks/gpu/wheels/ (git-ignored; the device call must carry it): diffusers and its importlib_metadata
# requirement (VQGAN), and TRL and datasets with the two requirements the machine has not (training.py).
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DEST=benchmarks/gpu/wheels
mkdir -p "$DEST"
read -r -a pins < <("$PYTHON" -c 'from importlib.metadata import version
names = ("diffusers", "importlib_metadata", "trl", "datasets", "dill", "multiprocess")
print(" ".join(f"{name}=={version(name)}" for name in names))')
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$DEST" "${pins[@]}"
ls -l "$DEST"
