"""load_backbone: wm-hub folders, stock checkpoints without wm-hub settings, and readable errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from wm_hub import load_backbone
from wm_hub.models.base import PromptFormat


def _strip_wm_hub_settings(folder):
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("wm_hub")
    config_path.write_text(json.dumps(config))


def test_stock_chameleon_checkpoint_is_detected(tiny_model_dirs, tmp_path, real_images):
    folder = tmp_path / "stock"
    shutil.copytree(tiny_model_dirs("chameleon"), folder)
    _strip_wm_hub_settings(folder)
    backbone = load_backbone(str(folder))
    assert backbone.arch == "chameleon"
    assert backbone.config.image_size == 64  # from vq_config.resolution
    assert backbone.processor.prompt == PromptFormat()
    reference = load_backbone(str(tiny_model_dirs("chameleon")))
    assert torch.equal(backbone.encode_images(real_images), reference.encode_images(real_images))


def test_saved_settings_round_trip(tiny_model_dirs, tmp_path):
    prompt = PromptFormat(fdm_instruction="Next frame:", idm_instruction="Action?")
    backbone = load_backbone(str(tiny_model_dirs("liquid")), prompt=prompt)
    backbone.save_pretrained(tmp_path / "saved")
    reloaded = load_backbone(str(tmp_path / "saved"))
    assert reloaded.processor.prompt == prompt and reloaded.arch == "liquid"
    assert reloaded.config.image_token_offset == backbone.config.image_token_offset
    tokens = reloaded.build_fdm_sequence(backbone.image_token_ids[:64], "go").input_ids
    assert (
        tokens[1 : 1 + len("Next frame:")] == backbone.tokenizer("Next frame:", add_special_tokens=False)["input_ids"]
    )
    for name, tensor in backbone.model.state_dict().items():
        torch.testing.assert_close(reloaded.model.state_dict()[name], tensor)


def test_arch_mismatch_and_unknown_family(tiny_model_dirs, tmp_path):
    with pytest.raises(ValueError, match="is a 'liquid' checkpoint, not 'chameleon'"):
        load_backbone(str(tiny_model_dirs("liquid")), arch="chameleon")
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type='bert'.*pass arch="):
        load_backbone(str(folder))


def test_missing_vqgan_explains_how_to_provide_it(tiny_model_dirs, tmp_path):
    folder = tmp_path / "no-vqgan"
    shutil.copytree(tiny_model_dirs("chameleon"), folder)
    shutil.rmtree(folder / "vqgan")
    with pytest.raises(FileNotFoundError, match="vqgan.ckpt.*wm-hub convert-vqgan"):
        load_backbone(str(folder))
    backbone = load_backbone(str(folder), vqgan=str(tiny_model_dirs("chameleon") / "vqgan"))
    assert backbone.image_seq_len == 64


def test_a_corrupt_vqgan_folder_is_named_as_unreadable_not_missing(tiny_model_dirs, tmp_path):
    folder = tmp_path / "torn-vqgan"
    shutil.copytree(tiny_model_dirs("chameleon"), folder)
    weights = folder / "vqgan" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match="torn-vqgan/vqgan: the VQGAN folder cannot be read"):
        load_backbone(str(folder))


def test_dtype_and_device_options(tiny_model_dirs):
    backbone = load_backbone(str(tiny_model_dirs("chameleon")), device="cpu", dtype="bfloat16")
    assert backbone.model.dtype == torch.bfloat16
    assert next(backbone.image_tokenizer.parameters()).dtype == torch.float32
    assert not backbone.model.training


def test_plain_gemma_is_not_taken_for_liquid(tiny_model_dirs, tmp_path):
    folder = tmp_path / "gemma"
    shutil.copytree(tiny_model_dirs("liquid"), folder)
    _strip_wm_hub_settings(folder)
    tokenizer_file = folder / "tokenizer.json"
    tokenizer_file.write_text(tokenizer_file.read_text().replace("<boi>", "<unused0>"))
    with pytest.raises(ValueError, match=r"not a Liquid checkpoint: the tokenizer has no \['<boi>'\]"):
        load_backbone(str(folder))


def test_unknown_settings_from_a_newer_version_are_ignored_with_a_warning(tiny_model_dirs, tmp_path, caplog):
    folder = tmp_path / "newer"
    shutil.copytree(tiny_model_dirs("chameleon"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["wm_hub"]["future_field"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with caplog.at_level("WARNING", logger="wm_hub.models.base"):
        backbone = load_backbone(str(folder))
    assert "future_field" in caplog.text and backbone.arch == "chameleon"


def test_chameleon_lm_vq_encoder_is_frozen(tiny_backbones):
    model = tiny_backbones("chameleon").model
    assert not any(parameter.requires_grad for parameter in model.model.vqmodel.parameters())
    assert all(parameter.requires_grad for parameter in model.model.layers.parameters())


def test_dtype_and_device_names_are_checked_before_loading():
    import torch

    from wm_hub.models.loading import torch_device, torch_dtype

    assert torch_dtype("bfloat16") is torch.bfloat16 and torch_dtype(torch.float16) is torch.float16
    assert torch_dtype("auto") is None  # transformers' "as saved"
    for name in ("float99", "Tensor", "cuda"):
        with pytest.raises(ValueError, match=f"dtype '{name}' is not a torch dtype"):
            torch_dtype(name)
    assert torch_device("cpu") == torch.device("cpu") == torch_device(torch.device("cpu"))
    with pytest.raises(ValueError, match="device 'banana' is not a torch device"):
        torch_device("banana")
    with pytest.raises(ValueError, match=f"device 'cuda:{torch.cuda.device_count()}': this machine has"):
        torch_device(f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(ValueError, match="dtype 'float99'"):
        load_backbone("no-such-folder", dtype="float99")  # refused before the folder is even looked for
