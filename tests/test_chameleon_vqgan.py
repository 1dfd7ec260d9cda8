"""diffusers.VQModel configured as Chameleon's VQGAN is the same network as transformers' ChameleonVQVAE."""

from __future__ import annotations

import pytest
import torch
import yaml
from diffusers import VQModel
from transformers import ChameleonVQVAEConfig
from transformers.models.chameleon.modeling_chameleon import ChameleonVQVAE

from wm_hub.cli import main
from wm_hub.models.chameleon_vqgan import (
    CHAMELEON_VQGAN_YAML,
    convert_taming_state_dict,
    decode_codes,
    encode_codes,
    load_taming_checkpoint,
    vqmodel_config_from_chameleon_vq_config,
    vqmodel_config_from_taming,
)

TINY = {
    "embed_dim": 16,
    "num_embeddings": 64,
    "latent_channels": 32,
    "base_channels": 32,
    "channel_multiplier": [1, 2, 2],
    "num_res_blocks": 2,
    "resolution": 32,
    "attn_resolutions": [],
}


def _hf_and_diffusers(vq_config: ChameleonVQVAEConfig) -> tuple[ChameleonVQVAE, VQModel]:
    torch.manual_seed(0)
    reference = ChameleonVQVAE(vq_config).eval()
    vqgan = VQModel(**vqmodel_config_from_chameleon_vq_config(vq_config)).eval()
    levels = len(vq_config.channel_multiplier)
    missing, unexpected = vqgan.load_state_dict(
        convert_taming_state_dict(reference.state_dict(), levels), strict=False
    )
    assert unexpected == []
    assert missing and all(key.startswith("decoder.") for key in missing)
    return reference, vqgan


def _assert_same_tokenizer(reference: ChameleonVQVAE, vqgan: VQModel, pixels: torch.Tensor) -> None:
    with torch.no_grad():  # ChameleonVQVAE.encode, keeping the pre-quantisation features it computes
        _, _, expected_codes = reference.quantize(reference.quant_conv(reference.encoder(pixels)))
        # encode_codes runs the convolutions channels-last: the reference in that layout uses the same kernels, so
        # the features compare to float32 precision (across layouts they differ in summation order, ~2e-5 at 512 px)
        reference.to(memory_format=torch.channels_last)
        expected_features = reference.quant_conv(
            reference.encoder(pixels.contiguous(memory_format=torch.channels_last))
        )
    codes, features = encode_codes(vqgan, pixels)
    batch = pixels.shape[0]
    assert torch.equal(codes, expected_codes.reshape(batch, -1).long())  # the reference's codes in its own layout
    assert codes.unique().numel() > 1
    dim = expected_features.shape[1]
    torch.testing.assert_close(features, expected_features.permute(0, 2, 3, 1).reshape(batch, -1, dim))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_tiny_config_identical_codes_and_features(memory_format):
    """Also with channels-last weights, as ``VQGANBackbone`` holds its VQGAN (faster convolutions on CPU)."""
    reference, vqgan = _hf_and_diffusers(ChameleonVQVAEConfig(**TINY))
    vqgan.to(memory_format=memory_format)
    pixels = torch.rand(3, 3, 32, 32) * 2 - 1
    _assert_same_tokenizer(reference, vqgan, pixels)


@pytest.mark.slow
def test_real_512px_config_identical_codes_and_features():
    vq_config = ChameleonVQVAEConfig()  # Chameleon-7B's VQ: 512px, ch 128, ch_mult (1,1,2,2,4), 8192 x 256 codes
    assert vq_config.resolution == 512 and vq_config.num_embeddings == 8192
    reference, vqgan = _hf_and_diffusers(vq_config)
    assert vqgan.config.block_out_channels == [128, 128, 256, 256, 512]
    torch.manual_seed(1)
    pixels = torch.rand(1, 3, 512, 512) * 2 - 1
    _assert_same_tokenizer(reference, vqgan, pixels)
    codes, _ = encode_codes(vqgan, pixels)
    assert codes.shape == (1, 1024)


def _taming_state_dict(params: dict) -> dict[str, torch.Tensor]:
    """A random state dict with exactly the key names and shapes of taming-transformers' VQModel."""
    dd = params["ddconfig"]
    ch, mult, blocks, z, embed = dd["ch"], dd["ch_mult"], dd["num_res_blocks"], dd["z_channels"], params["embed_dim"]
    sd: dict[str, torch.Tensor] = {}

    def conv(name, cin, cout, k=3):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = torch.randn(cout, cin, k, k) * 0.05, torch.randn(cout) * 0.05

    def norm(name, c):
        sd[f"{name}.weight"], sd[f"{name}.bias"] = 1 + torch.randn(c) * 0.05, torch.randn(c) * 0.05

    def resnet(name, cin, cout):
        norm(f"{name}.norm1", cin), conv(f"{name}.conv1", cin, cout), norm(f"{name}.norm2", cout)
        conv(f"{name}.conv2", cout, cout)
        if cin != cout:
            conv(f"{name}.nin_shortcut", cin, cout, k=1)

    def attention(name, c):
        norm(f"{name}.norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{part}", c, c, k=1)

    conv("encoder.conv_in", dd["in_channels"], ch)
    block_in = ch
    for level, m in enumerate(mult):
        for index in range(blocks):
            resnet(f"encoder.down.{level}.block.{index}", block_in, ch * m)
            block_in = ch * m
        if level != len(mult) - 1:
            conv(f"encoder.down.{level}.downsample.conv", block_in, block_in)
    resnet("encoder.mid.block_1", block_in, block_in), attention("encoder.mid.attn_1", block_in)
    resnet("encoder.mid.block_2", block_in, block_in)
    norm("encoder.norm_out", block_in), conv("encoder.conv_out", block_in, z)
    conv("decoder.conv_in", z, block_in)
    resnet("decoder.mid.block_1", block_in, block_in), attention("decoder.mid.attn_1", block_in)
    resnet("decoder.mid.block_2", block_in, block_in)
    for level in reversed(range(len(mult))):
        for index in range(blocks + 1):
            resnet(f"decoder.up.{level}.block.{index}", block_in, ch * mult[level])
            block_in = ch * mult[level]
        if level != 0:
            conv(f"decoder.up.{level}.upsample.conv", block_in, block_in)
    norm("decoder.norm_out", block_in), conv("decoder.conv_out", block_in, dd["out_ch"])
    sd["quantize.embedding.weight"] = torch.randn(params["n_embed"], embed)
    conv("quant_conv", z, embed, k=1), conv("post_quant_conv", embed, z, k=1)
    sd["loss.discriminator.main.0.weight"] = torch.randn(4, 3, 4, 4)  # training-only entries are dropped
    return sd


@pytest.fixture()
def taming_files(tmp_path):
    params = {
        "embed_dim": 16,
        "n_embed": 64,
        "ddconfig": {**CHAMELEON_VQGAN_YAML["ddconfig"], "ch": 32, "ch_mult": [1, 2, 2], "z_channels": 32},
    }
    params["ddconfig"]["resolution"] = 32
    torch.manual_seed(0)
    state_dict = _taming_state_dict(params)
    ckpt, config = tmp_path / "vqgan.ckpt", tmp_path / "vqgan.yaml"
    torch.save({"state_dict": state_dict, "global_step": 7}, ckpt)
    config.write_text(yaml.safe_dump({"model": {"target": "taming.models.vqgan.VQModel", "params": params}}))
    return ckpt, config, state_dict, params


def test_taming_checkpoint_converts_strictly_and_matches_hf_encoder(taming_files):
    ckpt, config, state_dict, params = taming_files
    vqgan = load_taming_checkpoint(ckpt, yaml.safe_load(config.read_text()))
    converted = vqgan.state_dict()
    # decoder blocks are stored in reverse order by diffusers; attention 1x1 convs become linear weights
    torch.testing.assert_close(
        converted["decoder.up_blocks.0.resnets.0.conv1.weight"], state_dict["decoder.up.2.block.0.conv1.weight"]
    )
    torch.testing.assert_close(
        converted["decoder.up_blocks.2.resnets.2.conv2.bias"], state_dict["decoder.up.0.block.2.conv2.bias"]
    )
    torch.testing.assert_close(
        converted["decoder.mid_block.attentions.0.to_out.0.weight"],
        state_dict["decoder.mid.attn_1.proj_out.weight"][:, :, 0, 0],
    )
    torch.testing.assert_close(converted["encoder.conv_norm_out.weight"], state_dict["encoder.norm_out.weight"])
    # the encoder half loads into transformers' ChameleonVQVAE unchanged and tokenizes identically
    dd = params["ddconfig"]
    hf_config = ChameleonVQVAEConfig(
        embed_dim=params["embed_dim"], num_embeddings=params["n_embed"], latent_channels=dd["z_channels"],
        base_channels=dd["ch"], channel_multiplier=dd["ch_mult"], resolution=dd["resolution"], attn_resolutions=[],
    )  # fmt: skip
    reference = ChameleonVQVAE(hf_config).eval()
    encoder_part = {k: v for k, v in state_dict.items() if not k.startswith(("decoder.", "loss."))}
    reference.load_state_dict(encoder_part, strict=True)
    _assert_same_tokenizer(reference, vqgan, torch.rand(2, 3, 32, 32) * 2 - 1)
    codes, _ = encode_codes(vqgan, torch.rand(2, 3, 32, 32) * 2 - 1)
    assert decode_codes(vqgan, codes, (8, 8)).shape == (2, 3, 32, 32)


def test_convert_vqgan_cli_writes_a_loadable_vqmodel(taming_files, tmp_path):
    ckpt, config, state_dict, _ = taming_files
    out = tmp_path / "converted"
    assert main(["convert-vqgan", "--ckpt", str(ckpt), "--yaml", str(config), "--out", str(out)]) == 0
    reloaded = VQModel.from_pretrained(out)
    torch.testing.assert_close(
        reloaded.state_dict()["quantize.embedding.weight"], state_dict["quantize.embedding.weight"]
    )


def test_unknown_taming_key_is_reported(taming_files):
    _, _, state_dict, params = taming_files
    with pytest.raises(KeyError, match="encoder.extra.weight"):
        convert_taming_state_dict(
            {**state_dict, "encoder.extra.weight": torch.zeros(1)}, len(params["ddconfig"]["ch_mult"])
        )


def test_attention_in_down_blocks_is_refused():
    ddconfig = {**CHAMELEON_VQGAN_YAML["ddconfig"], "attn_resolutions": [16]}
    with pytest.raises(ValueError, match="attn_resolutions"):
        vqmodel_config_from_taming(256, 8192, ddconfig)
