"""Fitting the tiny VQGAN: it learns, it is deterministic, and backbones built around it tokenize consistently."""

from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers import VQModel

from wm_hub import load_backbone
from wm_hub.cli import main
from wm_hub.data.shapes_world import WorldConfig
from wm_hub.models.chameleon_vqgan import encode_codes
from wm_hub.models.tiny import TinySpec, build_tiny_backbone, chameleon_vq_config, save_tiny_model
from wm_hub.training.vq_fitting import (
    VQFitConfig,
    evaluate,
    fit_tiny_vqgan,
    images_to_pixels,
    psnr,
    reconstruct,
    shapes_world_images,
    unchanged_cells,
)

SPEC = TinySpec(num_image_codes=128)


def short_fit(steps: int, seed: int = 0):
    config = VQFitConfig(steps=steps, batch_size=4, seed=seed, progress=False)
    return fit_tiny_vqgan(SPEC, config, num_images=128, num_heldout=16)


@pytest.fixture(scope="module")
def fitted():
    """A VQGAN fitted for 80 steps (past the first dead-entry restarts), and its metrics."""
    return short_fit(80)  # dead entries first restart after ~70 steps (EMA counts fall below dead_code_usage)


@pytest.fixture(scope="module")
def test_images():
    return shapes_world_images("test", 6, WorldConfig())


def test_psnr_known_values():
    reference = torch.zeros(2, 3, 8, 8)
    assert psnr(reference + 0.2, reference) == pytest.approx(20.0)  # MSE 0.04 over a range of 2: 10 log10(4 / 0.04)
    assert psnr(reference + 0.1, reference, data_range=1.0) == pytest.approx(20.0)
    assert math.isinf(psnr(reference, reference))
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(reference, reference[:1])


def test_a_short_fit_learns_and_uses_the_codebook(fitted):
    vqgan, metrics = fitted
    assert metrics.steps == 80 and metrics.num_codes == 128
    assert metrics.heldout_psnr > metrics.initial_psnr + 5, metrics
    assert metrics.codes_used > 8, metrics
    assert 0.0 <= metrics.code_stability <= 1.0
    assert not any(parameter.requires_grad for parameter in vqgan.parameters())


def test_unchanged_cells_marks_cells_with_identical_pixels():
    before = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    after = before.clone()
    after[0, 2, 9, 3] = 255  # one pixel of cell (row 1, column 0) of a 2x2 grid of 8 px cells
    assert unchanged_cells(before, after, (2, 2)).tolist() == [[[True, True], [False, True]]]


def test_stability_counts_code_agreement_on_unchanged_cells_of_pairs():
    pixels = images_to_pixels(shapes_world_images("test", 8, WorldConfig()))
    vqgan, _ = short_fit(1)
    _, _, stability = evaluate(vqgan, pixels)
    codes = torch.stack([reconstruct(vqgan, (image[None].float() / 127.5 - 1))[1].flatten() for image in pixels])
    same = unchanged_cells(pixels[0::2], pixels[1::2], (8, 8)).reshape(4, -1)
    assert stability == pytest.approx(float((codes[0::2] == codes[1::2])[same].float().mean()))


def test_fitting_is_deterministic_by_seed():
    first, first_metrics = short_fit(3, seed=1)
    second, second_metrics = short_fit(3, seed=1)
    other, _ = short_fit(3, seed=2)
    weights, again, different = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(weights[key], again[key]) for key in weights)
    assert first_metrics.heldout_psnr == second_metrics.heldout_psnr
    assert not torch.equal(weights["quantize.embedding.weight"], different["quantize.embedding.weight"])


def test_images_to_pixels_rejects_mixed_sizes(test_images):
    assert images_to_pixels(test_images).shape == (6, 3, 64, 64)
    with pytest.raises(ValueError, match="several sizes"):
        images_to_pixels([test_images[0], test_images[1].resize((32, 32))])


def test_chameleon_around_a_fitted_vqgan_tokenizes_like_its_lm(fitted, test_images, tmp_path):
    vqgan, _ = fitted
    save_tiny_model("chameleon", tmp_path, SPEC, vqgan)
    backbone = load_backbone(str(tmp_path))
    fitted_weights, loaded_weights = vqgan.state_dict(), backbone.vqgan.state_dict()
    assert all(torch.equal(fitted_weights[key], loaded_weights[key]) for key in fitted_weights)
    ids = backbone.encode_images(test_images)
    with torch.no_grad():  # the stock transformers path: the LM's ChameleonVQVAE encoder + quantizer
        stock_ids = backbone.model.model.get_image_tokens(backbone.preprocess(test_images))
    assert torch.equal(ids, stock_ids)
    assert ids.unique().numel() > 4
    assert len(backbone.decode_images(ids)) == len(test_images)


def test_liquid_around_a_fitted_vqgan(fitted, test_images, tmp_path):
    vqgan, _ = fitted
    save_tiny_model("liquid", tmp_path, SPEC, vqgan)
    backbone = load_backbone(str(tmp_path))
    codes, _ = encode_codes(vqgan, backbone.preprocess(test_images))
    assert torch.equal(backbone.ids_to_codes(backbone.encode_images(test_images)), codes)


def test_a_fitted_vqgan_must_match_the_spec_and_the_family(fitted):
    vqgan, _ = fitted
    with pytest.raises(ValueError, match="128 codes"):
        build_tiny_backbone("chameleon", TinySpec(), vqgan)
    with pytest.raises(ValueError, match="own VQ model"):
        build_tiny_backbone("emu3", SPEC, vqgan)
    with pytest.raises(ValueError, match="not Chameleon's VQGAN layout"):
        chameleon_vq_config(VQModel(block_out_channels=[32, 64], norm_num_groups=16, layers_per_block=1))


def test_cli_fits_once_and_reuses_the_vqgan(tmp_path, capsys):
    fitted_dir, reused_dir = tmp_path / "fitted", tmp_path / "reused"
    fit = ["--num-image-codes", "64", "--seed", "3", "--fit-vq", "shapes_world", "--fit-steps", "2"]
    assert main(["tiny-model", "--arch", "chameleon", "--out", str(fitted_dir), *fit]) == 0
    report = json.loads((fitted_dir / "vqgan" / "vq_fit.json").read_text())
    assert report["data"] == "shapes_world" and report["num_codes"] == 64 and report["config"]["seed"] == 3
    assert "held-out PSNR" in capsys.readouterr().out
    assert main(["tiny-model", "--arch", "liquid", "--out", str(reused_dir), "--vqgan", str(fitted_dir)]) == 0
    assert json.loads((reused_dir / "vqgan" / "vq_fit.json").read_text()) == report
    first, second = VQModel.from_pretrained(fitted_dir / "vqgan"), VQModel.from_pretrained(reused_dir / "vqgan")
    assert all(torch.equal(value, second.state_dict()[key]) for key, value in first.state_dict().items())
    with pytest.raises(SystemExit, match="own VQ model"):
        main(["tiny-model", "--arch", "emu3", "--out", str(tmp_path / "emu3"), "--vqgan", str(fitted_dir)])
    with pytest.raises(SystemExit, match="no VQModel folder"):
        main(["tiny-model", "--arch", "liquid", "--out", str(tmp_path / "x"), "--vqgan", str(tmp_path / "none")])
