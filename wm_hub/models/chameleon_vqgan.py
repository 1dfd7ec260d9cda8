"""Chameleon's VQGAN (also Liquid's) as a ``diffusers.VQModel``.

Chameleon and Liquid share Meta's taming-transformers VQGAN (``vqgan.ckpt`` + ``vqgan.yaml``). ``transformers``
ships only its encoder (``ChameleonVQVAE``); ``diffusers.VQModel`` implements the same architecture with a decoder.
This module configures ``VQModel`` as that VQGAN, converts taming-layout state dicts (Meta's ``vqgan.ckpt`` and
the ``model.vqmodel.*`` weights of a ``transformers`` Chameleon checkpoint use the same names) into it, and
computes codes exactly as Chameleon does (squared-distance argmin over the codebook). :class:`VQGANBackbone` is what
the two backbones share around it.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import VQModel

from wm_hub.models.base import Backbone, BackboneConfig
from wm_hub.models.processing import WorldModelProcessor

VQGAN_SUBFOLDER = "vqgan"

# Meta's vqgan.yaml for Chameleon-7B / Anole-7B (ddconfig + n_embed/embed_dim).
CHAMELEON_VQGAN_YAML = {
    "embed_dim": 256,
    "n_embed": 8192,
    "ddconfig": {
        "double_z": False,
        "z_channels": 256,
        "resolution": 512,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 1, 2, 2, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "dropout": 0.0,
    },
}


def vqmodel_config_from_taming(embed_dim: int, n_embed: int, ddconfig: dict[str, Any]) -> dict[str, Any]:
    """``diffusers.VQModel`` constructor arguments for a taming VQGAN config.

    Args:
        embed_dim: Codebook vector size (``quant_conv`` output channels).
        n_embed: Number of codebook entries.
        ddconfig: taming ``ddconfig`` (``ch``, ``ch_mult``, ``num_res_blocks``, ``z_channels``...).

    Raises:
        ValueError: For taming features ``VQModel`` does not have (attention inside the down/up blocks,
            ``double_z``).
    """
    if ddconfig.get("attn_resolutions"):
        raise ValueError(
            f"attn_resolutions={ddconfig['attn_resolutions']}: attention inside down/up blocks is not part of "
            "Chameleon's VQGAN and has no diffusers.VQModel equivalent"
        )
    if ddconfig.get("double_z"):
        raise ValueError("double_z=True is a KL autoencoder setting, not a VQGAN one")
    levels = len(ddconfig["ch_mult"])
    return {
        "in_channels": ddconfig.get("in_channels", 3),
        "out_channels": ddconfig.get("out_ch", 3),
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": [ddconfig["ch"] * mult for mult in ddconfig["ch_mult"]],
        "layers_per_block": ddconfig["num_res_blocks"],
        "latent_channels": ddconfig["z_channels"],
        "sample_size": ddconfig["resolution"],
        "num_vq_embeddings": n_embed,
        "vq_embed_dim": embed_dim,
        "norm_num_groups": 32,
        "mid_block_add_attention": True,
    }


def vqmodel_config_from_chameleon_vq_config(vq_config: Any) -> dict[str, Any]:
    """``VQModel`` arguments for a ``transformers.ChameleonVQVAEConfig``."""
    return vqmodel_config_from_taming(
        embed_dim=vq_config.embed_dim,
        n_embed=vq_config.num_embeddings,
        ddconfig={
            "double_z": vq_config.double_latent,
            "z_channels": vq_config.latent_channels,
            "resolution": vq_config.resolution,
            "in_channels": vq_config.in_channels,
            "out_ch": vq_config.in_channels,
            "ch": vq_config.base_channels,
            "ch_mult": list(vq_config.channel_multiplier),
            "num_res_blocks": vq_config.num_res_blocks,
            "attn_resolutions": vq_config.attn_resolutions or [],
        },
    )


def _convert_resnet(suffix: str) -> str:
    return suffix.replace("nin_shortcut", "conv_shortcut")


def _convert_attention(suffix: str) -> str:
    for taming, diffusers in (("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v.")):
        if suffix.startswith(taming):
            return diffusers + suffix[len(taming) :]
    if suffix.startswith("proj_out."):
        return "to_out.0." + suffix[len("proj_out.") :]
    raise KeyError(suffix)


def _convert_key(key: str, levels: int) -> str:
    """Map one taming key to its ``VQModel`` name (raises ``KeyError`` for an unknown key)."""
    for part in ("encoder", "decoder"):
        if not key.startswith(part + "."):
            continue
        rest = key[len(part) + 1 :]
        simple = {"conv_in.": "conv_in.", "conv_out.": "conv_out.", "norm_out.": "conv_norm_out."}
        for taming, diffusers in simple.items():
            if rest.startswith(taming):
                return f"{part}.{diffusers}{rest[len(taming) :]}"
        if match := re.fullmatch(r"mid\.block_([12])\.(.+)", rest):
            return f"{part}.mid_block.resnets.{int(match[1]) - 1}.{_convert_resnet(match[2])}"
        if match := re.fullmatch(r"mid\.attn_1\.(.+)", rest):
            return f"{part}.mid_block.attentions.0.{_convert_attention(match[1])}"
        if match := re.fullmatch(r"down\.(\d+)\.block\.(\d+)\.(.+)", rest):
            return f"{part}.down_blocks.{match[1]}.resnets.{match[2]}.{_convert_resnet(match[3])}"
        if match := re.fullmatch(r"down\.(\d+)\.downsample\.conv\.(.+)", rest):
            return f"{part}.down_blocks.{match[1]}.downsamplers.0.conv.{match[2]}"
        if match := re.fullmatch(r"up\.(\d+)\.block\.(\d+)\.(.+)", rest):
            block = levels - 1 - int(match[1])
            return f"{part}.up_blocks.{block}.resnets.{match[2]}.{_convert_resnet(match[3])}"
        if match := re.fullmatch(r"up\.(\d+)\.upsample\.conv\.(.+)", rest):
            return f"{part}.up_blocks.{levels - 1 - int(match[1])}.upsamplers.0.conv.{match[2]}"
    if key in ("quantize.embedding.weight",) or key.split(".")[0] in ("quant_conv", "post_quant_conv"):
        return key
    raise KeyError(key)


def convert_taming_state_dict(state_dict: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Convert a taming-layout VQGAN state dict (Meta's ``vqgan.ckpt``) to ``diffusers.VQModel`` names.

    Training-only entries (``loss.*``, the discriminator) are dropped; attention ``q/k/v/proj_out`` 1x1 convs
    become linear weights.

    Args:
        state_dict: taming keys (``encoder.*``, ``decoder.*``, ``quantize.embedding.weight``, ``quant_conv.*``,
            ``post_quant_conv.*``).
        levels: ``len(ch_mult)`` (decoder up-blocks are stored in reverse order by diffusers).

    Raises:
        KeyError: On a key that is neither a VQGAN weight nor a known training-only entry.
    """
    converted = {}
    for key, value in state_dict.items():
        if key.startswith("loss."):
            continue
        new_key = _convert_key(key, levels)
        if ".attentions.0.to_" in new_key and new_key.endswith(".weight") and value.ndim == 4:
            value = value[:, :, 0, 0]
        converted[new_key] = value
    return converted


def load_taming_checkpoint(ckpt_path: str | Path, config: dict[str, Any] | None = None) -> VQModel:
    """Build a ``VQModel`` from Meta's ``vqgan.ckpt`` (taming layout) and its ``vqgan.yaml`` config.

    Args:
        ckpt_path: Path to ``vqgan.ckpt`` (a torch pickle whose ``state_dict`` holds the taming keys).
        config: The parsed ``vqgan.yaml`` (``model.params`` or the params themselves); Chameleon's if omitted.
    """
    params = CHAMELEON_VQGAN_YAML if config is None else config.get("model", {}).get("params", config)
    kwargs = vqmodel_config_from_taming(params["embed_dim"], params["n_embed"], params["ddconfig"])
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    state_dict = checkpoint.get("state_dict", checkpoint)
    vq = VQModel(**kwargs)
    vq.load_state_dict(convert_taming_state_dict(state_dict, len(params["ddconfig"]["ch_mult"])), strict=True)
    return vq.eval().requires_grad_(False)


def read_vqgan_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a taming ``vqgan.yaml``."""
    import yaml

    with open(path) as handle:
        return yaml.safe_load(handle)


@dataclass
class ConvertVQGANConfig:
    """A taming ``vqgan.ckpt`` to write as a diffusers ``VQModel`` folder (``wm-hub convert-vqgan``).

    Args:
        ckpt: Meta's/Anole's ``vqgan.ckpt``.
        out: Output folder, e.g. ``<model>/vqgan`` where :func:`load_vqgan` finds it.
        yaml: Its ``vqgan.yaml`` (``None``: Chameleon-7B's config, :data:`CHAMELEON_VQGAN_YAML`).
    """

    ckpt: str = field(metadata={"help": "path to vqgan.ckpt"})
    out: str = field(metadata={"help": "output folder (e.g. MODEL/vqgan, where load_backbone(MODEL) finds it)"})
    yaml: str | None = field(default=None, metadata={"help": "path to vqgan.yaml (default: Chameleon-7B's config)"})


def convert_vqgan(config: ConvertVQGANConfig) -> Path:
    """Convert ``config.ckpt`` (with ``config.yaml``) and save the ``VQModel``, encoder and decoder, to
    ``config.out``; returns the folder.

    Raises:
        FileNotFoundError: ``config.ckpt`` is not a file.
        ValueError: ``config.ckpt`` is not a taming VQGAN checkpoint of that config.
    """
    if not Path(config.ckpt).is_file():
        raise FileNotFoundError(f"--ckpt {config.ckpt}: no such file")
    try:
        vqgan = load_taming_checkpoint(config.ckpt, read_vqgan_yaml(config.yaml) if config.yaml else None)
    except (pickle.UnpicklingError, EOFError, AttributeError) as error:  # what torch.load makes of other files
        raise ValueError(f"--ckpt {config.ckpt}: not a torch checkpoint ({error})") from None
    except KeyError as error:
        raise ValueError(f"--ckpt {config.ckpt}: not a taming VQGAN checkpoint (unexpected key {error})") from None
    except RuntimeError as error:  # load_state_dict: missing weights or other sizes
        first = str(error).strip().splitlines()[-1].strip()
        raise ValueError(f"--ckpt {config.ckpt}: its weights do not fit the VQGAN config ({first})") from None
    vqgan.save_pretrained(config.out)
    return Path(config.out)


@torch.no_grad()
def encode_codes(vq: VQModel, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Chameleon's image tokenization.

    Args:
        vq: The VQGAN.
        pixel_values: ``(B, 3, H, W)`` in [-1, 1].

    Returns:
        codes ``(B, h*w)`` (row-major codebook indices) and pre-quantisation features ``(B, h*w, D)``
        (``quant_conv(encoder(x))``, the paper's recognition features) in the same order.
    """
    # Channels-last input: the encoder's convolutions run 1.3-1.6x faster on CPU (benchmarks/bench_vq_memory_format.py)
    # when the weights are channels-last too (VQGANBackbone keeps them so); the codes are the same.
    features = vq.quant_conv(vq.encoder(pixel_values.contiguous(memory_format=torch.channels_last)))
    batch, dim = features.shape[:2]
    flat = features.permute(0, 2, 3, 1).reshape(batch, -1, dim)
    codes = nearest_codes(flat.reshape(-1, dim), vq.quantize.embedding.weight).reshape(batch, -1)
    return codes, flat


def nearest_codes(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The index of each ``(N, D)`` vector's nearest codebook row: Chameleon's quantizer rule, the same expansion
    ``||z||^2 + ||e||^2 - 2 z.e`` and argmin (bitwise-equal codes, not ``cdist``)."""
    distances = (
        vectors.pow(2).sum(dim=1, keepdim=True)
        + codebook.pow(2).sum(dim=1)
        - 2 * torch.einsum("bd,dn->bn", vectors, codebook.t())
    )
    return distances.argmin(dim=1)


@torch.no_grad()
def decode_codes(vq: VQModel, codes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Codes ``(B, h*w)`` -> pixel values ``(B, 3, H, W)`` in roughly [-1, 1]."""
    quant = vq.quantize.get_codebook_entry(codes.reshape(-1), (codes.shape[0], *grid, vq.config.vq_embed_dim))
    return vq.decoder(vq.post_quant_conv(quant))


def load_vqgan(path: str, vqgan: str | None = None, vqgan_config: str | None = None) -> VQModel:
    """Find and load the Chameleon VQGAN of a checkpoint (shared by Chameleon and Liquid).

    Args:
        path: The LM checkpoint (its ``vqgan`` subfolder is the default location).
        vqgan: A diffusers ``VQModel`` folder/Hub id or a taming ``vqgan.ckpt`` file.
        vqgan_config: The ``vqgan.yaml`` of a ``vqgan.ckpt``.

    Raises:
        FileNotFoundError: With the ways to provide the VQGAN when none is found.
        ValueError: A VQGAN folder that is there but cannot be read (a truncated or corrupt file).
    """
    if vqgan is not None and str(vqgan).endswith(".ckpt"):
        return load_taming_checkpoint(vqgan, read_vqgan_yaml(vqgan_config) if vqgan_config else None)
    try:
        if vqgan is not None:
            model = VQModel.from_pretrained(vqgan)
        else:
            model = VQModel.from_pretrained(path, subfolder=VQGAN_SUBFOLDER)
    except OSError as error:
        folder = Path(vqgan) if vqgan is not None else Path(path) / VQGAN_SUBFOLDER
        if folder.is_dir():  # there, but a file in it is truncated or corrupt: say so, not "convert one"
            raise ValueError(f"{folder}: the VQGAN folder cannot be read: {error}") from error
        raise FileNotFoundError(
            f"No VQGAN for {path}: wm-hub needs the VQGAN decoder, which HF Chameleon checkpoints do not ship. "
            "Pass vqgan='.../vqgan.ckpt' (and vqgan_config='.../vqgan.yaml') from Meta's/Anole's release, or "
            f"convert it once with `wm-hub convert-vqgan --ckpt vqgan.ckpt --out {path}/{VQGAN_SUBFOLDER}`."
        ) from error
    return model.eval().requires_grad_(False)


class VQGANBackbone(Backbone):
    """A backbone whose image tokenizer is this VQGAN, kept beside the LM (Chameleon/Anole and Liquid).

    Args:
        model: The LM.
        processor: Its :class:`~wm_hub.models.processing.WorldModelProcessor`.
        vqgan: The VQGAN as a ``diffusers.VQModel`` (frozen here).
        config: wm-hub settings.
    """

    def __init__(self, model, processor: WorldModelProcessor, vqgan: VQModel, config: BackboneConfig):
        super().__init__(model, processor, config)
        # Channels-last convolution weights (see `encode_codes`); `save_pretrained` writes them in the usual layout.
        self.vqgan = vqgan.eval().requires_grad_(False).to(memory_format=torch.channels_last)

    @property
    def image_tokenizer(self) -> VQModel:
        return self.vqgan

    def vqgan_grid(self) -> tuple[int, int]:
        """The token grid of one ``config.image_size`` picture (one code per ``2 ** (levels - 1)`` pixels)."""
        side = self.config.image_size // 2 ** (len(self.vqgan.config.block_out_channels) - 1)
        return side, side

    def _encode_codes(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_codes(self.vqgan, pixel_values)

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return decode_codes(self.vqgan, codes, self.image_grid)

    def _save_image_tokenizer(self, save_directory: Path) -> None:
        self.vqgan.save_pretrained(save_directory / VQGAN_SUBFOLDER)
