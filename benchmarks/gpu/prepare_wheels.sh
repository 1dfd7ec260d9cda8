#!/usr/bin/env bash
# Run HERE (where PyPI is reachable), from the repository root, before a device run.
# Downloads the pure-Python wheels that the GPU machine lacks (diffusers and its importlib_metadata requirement), at
# the versions installed here, into benchmarks/gpu/wheels/ (git-ignored; the device call must carry it).
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DEST=benchmarks/gpu/wheels
mkdir -p "$DEST"
read -r -a pins < <("$PYTHON" -c 'from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in ("diffusers", "importlib_metadata")))')
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$DEST" "${pins[@]}"
ls -l "$DEST"
