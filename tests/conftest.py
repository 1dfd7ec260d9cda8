"""Shared fixtures: offline environment, tiny backbones built once per session, real AURORA-BENCH samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from shared_data import require

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCH_MINI = SHARED_DATA / "aurora-bench-mini"


@pytest.fixture(scope="session")
def real_images():
    """Two real AURORA-BENCH images of different sizes and modes: an RGBA PNG (CLEVR) and an RGB JPEG (EPIC)."""
    from PIL import Image

    require(BENCH_MINI)
    paths = [sorted((BENCH_MINI / "data/clevr/images").glob("*.png"))[0]]
    paths.append(sorted((BENCH_MINI / "data/epic/images").glob("*.jpg"))[0])
    images = []
    for path in paths:
        with Image.open(path) as image:
            image.load()
            images.append(image.copy())
    assert images[0].mode != images[1].mode and images[0].size != images[1].size
    return images


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """``{arch: folder}`` written by ``wm-hub tiny-model`` for every tiny preset (built lazily, once)."""
    from wm_hub.cli import main

    cache: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in cache:
            out = tmp_path_factory.mktemp(f"tiny-{arch}")
            assert main(["tiny-model", "--arch", arch, "--out", str(out)]) == 0
            cache[arch] = out
        return cache[arch]

    return get


@pytest.fixture(scope="session")
def tiny_backbones(tiny_model_dirs):
    """``{arch: Backbone}`` loaded with ``load_backbone`` from the tiny-model folders (cached per session)."""
    from wm_hub import load_backbone

    cache = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = load_backbone(str(tiny_model_dirs(arch)))
        return cache[arch]

    return get
