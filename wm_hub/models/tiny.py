"""Offline tiny presets: random-weight backbones with locally built tokenizers.

Each preset has the real layout of its family (vocabulary structure, special tokens, VQ architecture, config
classes) at a size that trains and samples on a laptop CPU. ``save_pretrained`` writes a folder that
:func:`wm_hub.load_backbone` reads through the same code path as a real checkpoint. Tests and ``make demo`` use
them; nothing is downloaded.

The random VQGAN of the Chameleon and Liquid presets decodes every code to noise; pass ``vqgan=`` a fitted one
(:mod:`wm_hub.training.vq_fitting`) to get an image tokenizer whose pictures can be recognised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import VQModel
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    ChameleonConfig,
    ChameleonImageProcessorPil,
    ChameleonVQVAEConfig,
    Emu3Config,
    Emu3ForConditionalGeneration,
    GemmaConfig,
    GemmaForCausalLM,
    PreTrainedTokenizerFast,
)

from wm_hub.models import emu3
from wm_hub.models.base import Backbone, BackboneConfig
from wm_hub.models.chameleon import BOI_TOKEN, END_OF_TURN_TOKEN, EOI_TOKEN, ChameleonBackbone
from wm_hub.models.chameleon import ChameleonWorldModelForConditionalGeneration as ChameleonLM
from wm_hub.models.chameleon_vqgan import (
    VQGAN_SUBFOLDER,
    convert_taming_state_dict,
    vqmodel_config_from_chameleon_vq_config,
)
from wm_hub.models.emu3 import Emu3Backbone
from wm_hub.models.liquid import LiquidBackbone
from wm_hub.models.processing import WorldModelProcessor


@dataclass
class TinySpec:
    """Size of a tiny preset.

    Args:
        image_size: Image side in pixels (the VQ downsamples by 8: 64 px -> 8x8 = 64 tokens).
        num_image_codes: VQ codebook size.
        hidden_size: LM width.
        num_layers: LM depth.
        num_heads: LM attention heads.
        seed: Seed of the random weights.
        text_merges: Byte-level BPE merges of the text tokenizer, in rank order (:func:`fit_byte_merges`); none
            writes text one byte per token (~4x the tokens of a real tokenizer's English).
    """

    image_size: int = 64
    num_image_codes: int = 512
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    seed: int = 0
    text_merges: tuple[tuple[str, str], ...] = ()


VQ_DOWNSAMPLING = 8  # every tiny VQ model: 64 px -> 8 x 8 codes
FIT_REPORT = "vq_fit.json"  # written next to a fitted VQGAN: data, settings, held-out PSNR


@dataclass
class TinyModelConfig:
    """A tiny backbone to write (``wm-hub tiny-model``), its VQGAN random, fitted or reused.

    Args:
        arch: Backbone family.
        out: Output folder (config.json, weights, tokenizer, VQ model).
        image_size: Image side in pixels (``None``: 64 -> 8x8 tokens, or the ``vqgan``'s).
        seed: Seed of the random weights (and of the VQGAN fit).
        num_image_codes: VQ codebook size (``None``: 512, or the ``vqgan``'s).
        fit_vq: Chameleon/Liquid: fit the VQGAN on this data so that decoded images are recognisable (a few CPU
            minutes; :func:`wm_hub.training.vq_fitting.write_tiny_model`); its report (held-out PSNR) goes to
            ``OUT/vqgan/vq_fit.json``.
        vqgan: Chameleon/Liquid: reuse the fitted VQGAN of a model folder (or its ``vqgan/``) and its report.
        fit_steps: Training steps of the ``fit_vq`` fit (``None``: ``VQFitConfig``'s).
    """

    arch: Literal["chameleon", "liquid", "emu3"] = field(metadata={"help": "backbone family"})
    out: str = field(metadata={"help": "output folder (config.json, weights, tokenizer, VQ model)"})
    image_size: int | None = field(
        default=None, metadata={"help": "image side in pixels (default: 64 -> 8x8 tokens, or the --vqgan's)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the random weights (default: 0)"})
    num_image_codes: int | None = field(
        default=None, metadata={"help": "VQ codebook size (default: 512, or the --vqgan's)"}
    )
    fit_vq: Literal["shapes_world"] | None = field(
        default=None,
        metadata={
            "help": "chameleon/liquid: fit the VQGAN on this data so decoded images are recognisable (a few CPU "
            "minutes); PSNR in OUT/vqgan/vq_fit.json"
        },
    )
    vqgan: str | None = field(
        default=None, metadata={"help": "chameleon/liquid: reuse the fitted VQGAN of a model folder (or its vqgan/)"}
    )
    fit_steps: int | None = field(
        default=None, metadata={"help": "training steps of --fit-vq (default: VQFitConfig's)"}
    )

    def __post_init__(self) -> None:
        if self.fit_vq and self.vqgan:
            raise ValueError("--fit-vq and --vqgan exclude each other: fit a new VQGAN or reuse a fitted one")
        if self.fit_steps is not None and not self.fit_vq:
            raise ValueError("--fit-steps needs --fit-vq")
        for name in ("image_size", "num_image_codes", "fit_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.image_size is not None and self.image_size % VQ_DOWNSAMPLING:
            raise ValueError(
                f"--image-size must be a multiple of {VQ_DOWNSAMPLING} (the VQ's downsampling), got {self.image_size}"
            )

    def spec(self, vqgan: VQModel | None = None) -> TinySpec:
        """The sizes and seed to build: the ones given, else the reused ``vqgan``'s, else :class:`TinySpec`'s."""
        sizes = TinySpec() if vqgan is None else TinySpec(vqgan.config.sample_size, vqgan.config.num_vq_embeddings)
        return TinySpec(
            image_size=self.image_size or sizes.image_size,
            seed=self.seed,
            num_image_codes=self.num_image_codes or sizes.num_image_codes,
        )


def read_fitted_vqgan(path: str | Path) -> tuple[VQModel, dict[str, Any] | None]:
    """A saved VQGAN, from a model folder's ``vqgan/`` or a ``VQModel`` folder, and its fit report if it has one.

    Raises:
        FileNotFoundError: Neither holds a ``VQModel`` (``config.json`` and weights).
    """
    folder = Path(path) / VQGAN_SUBFOLDER if (Path(path) / VQGAN_SUBFOLDER).is_dir() else Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"--vqgan {path}: no VQModel folder (config.json + weights) there or in its vqgan/")
    report = folder / FIT_REPORT
    return VQModel.from_pretrained(folder), json.loads(report.read_text()) if report.is_file() else None


def build_byte_tokenizer(
    leading_tokens: list[str],
    special_tokens: list[str],
    *,
    bos: str,
    eos: str,
    pad: str,
    unk: str,
    trailing_tokens: list[str] = (),
    merges: Sequence[tuple[str, str]] = (),
) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (every UTF-8 text encodes) with fixed ids for special tokens.

    Ids: ``leading_tokens`` first (in order), then the 256 byte symbols, then ``trailing_tokens``, then the tokens
    made by ``merges`` (byte-level BPE merges, in rank order). Every token of ``leading_tokens``,
    ``trailing_tokens`` and ``special_tokens`` is atomic (never split).

    Args:
        leading_tokens: Tokens at ids ``0..n-1`` (e.g. ``<s> <pad> </s> <unk>`` and image tokens).
        special_tokens: Tokens among ``leading_tokens``/``trailing_tokens`` to mark as special.
        bos: Begin-of-sequence token.
        eos: End-of-sequence token.
        pad: Padding token.
        unk: Unknown token.
        trailing_tokens: Tokens after the byte symbols.
        merges: BPE merges over the byte symbols (none: one token per byte).
    """
    byte_symbols = list(pre_tokenizers.ByteLevel.alphabet())
    byte_symbols.sort()
    vocab: dict[str, int] = {}
    for token in [*leading_tokens, *byte_symbols, *trailing_tokens, *(left + right for left, right in merges)]:
        if token in vocab:
            raise ValueError(f"duplicate token {token!r}")
        vocab[token] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    atomic = [*leading_tokens, *trailing_tokens]
    backend.add_special_tokens([AddedToken(token, special=token in special_tokens) for token in atomic])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=unk
    )


def fit_byte_merges(texts: Iterable[str], vocab_size: int) -> tuple[tuple[str, str], ...]:
    """Byte-level BPE merges fitted on ``texts`` with ``tokenizers``' trainer, for :func:`build_byte_tokenizer`.

    Args:
        texts: The corpus.
        vocab_size: Size of the fitted BPE: the 256 byte symbols plus at most ``vocab_size - 256`` merges.

    Returns:
        The merges in rank order.
    """
    fitter = Tokenizer(models.BPE())
    fitter.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    fitter.train_from_iterator(texts, trainer)
    return tuple(
        tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge)
        for merge in json.loads(fitter.to_str())["model"]["merges"]
    )


# Output layers of the residual branches of VQ resnet and attention blocks (Chameleon/taming, diffusers, Emu3 names).
RESIDUAL_OUTPUT = re.compile(r"(conv2|proj_out|out_proj|to_out\.0)$")


def zero_residual_branches(vq: torch.nn.Module) -> int:
    """Zero the last layer of every residual branch of a VQ model (zero-init residuals); returns how many.

    Every resnet and attention block then starts as the identity, so a random encoder is local, as a trained VQ
    encoder is: a change in one image patch moves the features of that patch and its neighbours only. With plain
    random weights, the middle attention block spreads every change over the whole token grid, and recognition
    weights (and the images decoded from random codes) carry no spatial meaning.
    """
    zeroed = 0
    for name, module in vq.named_modules():
        if RESIDUAL_OUTPUT.search(name):
            with torch.no_grad():
                for parameter in module.parameters():
                    parameter.zero_()
            zeroed += 1
    return zeroed


def chameleon_image_token(code: int) -> str:
    """Chameleon's vocabulary name of image code ``code`` (digits written as letters A-J): 12 -> IMGIMGBCZ."""
    return "IMGIMG" + "".join(chr(ord("A") + int(digit)) for digit in str(code)) + "Z"


def _tiny_vq_config(spec: TinySpec) -> dict:
    return {
        "embed_dim": 32,
        "num_embeddings": spec.num_image_codes,
        "latent_channels": 32,
        "resolution": spec.image_size,
        "base_channels": 32,
        "channel_multiplier": [1, 1, 2, 2],
        "num_res_blocks": 1,
        "attn_resolutions": [],
    }


def tiny_vqgan(spec: TinySpec) -> VQModel:
    """A VQGAN of Chameleon's layout at the tiny presets' size, with diffusers' random init (torch's global RNG)."""
    return VQModel(**vqmodel_config_from_chameleon_vq_config(ChameleonVQVAEConfig(**_tiny_vq_config(spec))))


def chameleon_vq_config(vqgan: VQModel) -> dict:
    """The ``ChameleonVQVAEConfig`` arguments of a Chameleon-layout ``VQModel`` (the reverse of
    :func:`~wm_hub.models.chameleon_vqgan.vqmodel_config_from_chameleon_vq_config`).

    Raises:
        ValueError: If ``vqgan`` is not laid out as Chameleon's VQGAN (other norm groups, block types...).
    """
    config = vqgan.config
    base = config.block_out_channels[0]
    vq_config = {
        "embed_dim": config.vq_embed_dim or config.latent_channels,  # None: diffusers uses latent_channels
        "num_embeddings": config.num_vq_embeddings,
        "latent_channels": config.latent_channels,
        "resolution": config.sample_size,
        "in_channels": config.in_channels,
        "base_channels": base,
        "channel_multiplier": [channels // base for channels in config.block_out_channels],
        "num_res_blocks": config.layers_per_block,
        "attn_resolutions": [],
    }
    expected = vqmodel_config_from_chameleon_vq_config(ChameleonVQVAEConfig(**vq_config))
    expected.update(act_fn="silu", norm_type="group")
    found = {key: list(value) if isinstance(value, tuple) else value for key, value in config.items()}
    found["vq_embed_dim"] = vq_config["embed_dim"]
    different = {key: (found.get(key), value) for key, value in expected.items() if found.get(key) != value}
    if different:
        raise ValueError(f"not Chameleon's VQGAN layout; (found, expected) per field: {different}")
    return vq_config


def load_vqgan_into_chameleon_vq(vqmodel: torch.nn.Module, vqgan: VQModel) -> None:
    """Copy a VQGAN's encoder, ``quant_conv``, codebook and ``post_quant_conv`` into transformers'
    ``ChameleonVQVAE`` (taming names), so ``get_image_tokens`` and ``encode_codes`` give the same codes.

    Each taming name is mapped to its ``VQModel`` name by the converter used for Meta's checkpoints; attention
    projections go back from linear weights to 1x1 convolutions.
    """
    levels = len(vqgan.config.block_out_channels)
    source = vqgan.state_dict()
    weights = {}
    for key, value in vqmodel.state_dict().items():
        (diffusers_key,) = convert_taming_state_dict({key: value}, levels)
        weights[key] = source[diffusers_key].reshape(value.shape)
    vqmodel.load_state_dict(weights, strict=True)


def _vqgan_from_chameleon_lm(model: ChameleonLM) -> VQModel:
    """A diffusers VQGAN sharing the LM's VQ encoder/codebook weights (random decoder)."""
    vq_config = model.config.vq_config
    vqgan = VQModel(**vqmodel_config_from_chameleon_vq_config(vq_config))
    encoder_weights = convert_taming_state_dict(model.model.vqmodel.state_dict(), len(vq_config.channel_multiplier))
    missing, unexpected = vqgan.load_state_dict(encoder_weights, strict=False)
    if unexpected or any(not key.startswith("decoder.") for key in missing):
        raise RuntimeError(f"VQGAN layout mismatch: missing={missing} unexpected={unexpected}")
    return vqgan


def _check_vqgan(spec: TinySpec, vqgan: VQModel) -> None:
    found = (vqgan.config.num_vq_embeddings, vqgan.config.sample_size)
    if found != (spec.num_image_codes, spec.image_size):
        raise ValueError(
            f"the VQGAN has {found[0]} codes for {found[1]} px images but the spec asks for "
            f"{spec.num_image_codes} codes and {spec.image_size} px; build the spec from the VQGAN's sizes"
        )


def build_tiny_chameleon(
    spec: TinySpec, vqgan: VQModel | None = None, tokenizer: PreTrainedTokenizerFast | None = None
) -> ChameleonBackbone:
    """A random tiny Chameleon: HF Chameleon vocabulary layout, ``ChameleonVQVAE`` encoder, VQGAN decoder.

    Args:
        spec: Sizes and seed.
        vqgan: A fitted Chameleon-layout VQGAN to use instead of a random one; its encoder, ``quant_conv`` and
            codebook are also copied into the LM's ``ChameleonVQVAE``, so that the stock
            ``get_image_tokens`` gives the same codes as the backbone.
        tokenizer: A tokenizer of the tiny Chameleon layout (special tokens, one ``IMGIMG...Z`` token per code)
            instead of the byte-level one (``spec.text_merges`` is then unused), e.g. the sandbox's
            (:mod:`wm_hub.sandbox.text`).
    """
    if vqgan is not None:
        _check_vqgan(spec, vqgan)
    torch.manual_seed(spec.seed)
    image_tokens = [chameleon_image_token(code) for code in range(spec.num_image_codes)]
    specials = ["<s>", "<pad>", "</s>", "<unk>", EOI_TOKEN, BOI_TOKEN, END_OF_TURN_TOKEN, "<image>"]
    tokenizer = tokenizer or build_byte_tokenizer(
        ["<s>", "<pad>", "</s>", "<unk>", *image_tokens, EOI_TOKEN, BOI_TOKEN, END_OF_TURN_TOKEN, "<image>"],
        specials,
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        unk="<unk>",
        merges=spec.text_merges,
    )
    config = ChameleonConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.hidden_size * 2,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        vocabulary_map=tokenizer.get_vocab(),
        vq_config=_tiny_vq_config(spec) if vqgan is None else chameleon_vq_config(vqgan),
    )
    model = ChameleonLM(config).eval()
    if vqgan is None:
        zero_residual_branches(model.model.vqmodel)
        vqgan = _vqgan_from_chameleon_lm(model)
        zero_residual_branches(vqgan.decoder)
    else:
        load_vqgan_into_chameleon_vq(model.model.vqmodel, vqgan)
    image_processor = ChameleonImageProcessorPil(
        size={"shortest_edge": spec.image_size}, crop_size={"height": spec.image_size, "width": spec.image_size}
    )
    settings = BackboneConfig(arch="chameleon", image_size=spec.image_size)
    return ChameleonBackbone(model, WorldModelProcessor(image_processor, tokenizer), vqgan, settings)


def build_tiny_liquid(spec: TinySpec, vqgan: VQModel | None = None) -> LiquidBackbone:
    """A random tiny Liquid: Gemma LM, byte tokenizer with ``<boi>``/``<eoi>``, codes appended after the text.

    Args:
        spec: Sizes and seed.
        vqgan: A fitted Chameleon-layout VQGAN to use instead of a random one.
    """
    if vqgan is not None:
        _check_vqgan(spec, vqgan)
    torch.manual_seed(spec.seed)
    tokenizer = build_byte_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>", "<boi>", "<eoi>", "<unconditional>", "<start_of_turn>", "<end_of_turn>"],
        ["<pad>", "<eos>", "<bos>", "<unk>", "<boi>", "<eoi>", "<unconditional>", "<start_of_turn>", "<end_of_turn>"],
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        merges=spec.text_merges,
    )
    config = GemmaConfig(
        vocab_size=len(tokenizer) + spec.num_image_codes,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.hidden_size * 2,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        head_dim=spec.hidden_size // spec.num_heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GemmaForCausalLM(config).eval()
    if vqgan is None:
        vqgan = tiny_vqgan(spec)
        zero_residual_branches(vqgan)
    settings = BackboneConfig(arch="liquid", image_size=spec.image_size, image_token_offset=len(tokenizer))
    processor = WorldModelProcessor(LiquidBackbone.default_image_processor("", settings), tokenizer)
    return LiquidBackbone(model, processor, vqgan, settings)


def emu3_visual_token(code: int) -> str:
    """Emu3's vocabulary name of image code ``code``: 12 -> ``<|visual token 000012|>``."""
    return f"<|visual token {code:06d}|>"


def build_tiny_emu3(spec: TinySpec, vqgan: VQModel | None = None) -> Emu3Backbone:
    """A random tiny Emu3: ``Emu3ForConditionalGeneration`` with a small ``Emu3VQVAE`` and Emu3's token names.

    Layout as in Emu3: special tokens, then the text (here: bytes), then one ``<|visual token NNNNNN|>`` per code.
    The VQ downsamples by 8 spatially (64 px -> 8x8 codes) and by 2 in time (the smallest factor that still runs
    Emu3's frame repetition and temporal down/upsampling, which a factor of 1 would skip).

    Raises:
        ValueError: If given a ``vqgan``: Emu3 has its own VQ model, not Chameleon's VQGAN.
    """
    if vqgan is not None:
        raise ValueError("emu3 tokenizes images with its own VQ model (Emu3VQVAE): a fitted VQGAN does not apply")
    torch.manual_seed(spec.seed)
    specials = [
        "<|endoftext|>",
        "<|extra_203|>",
        "<|extra_204|>",
        "<unk>",
        emu3.BOI_TOKEN,
        emu3.EOI_TOKEN,
        emu3.IMAGE_WRAPPER_TOKEN,
        emu3.EOL_TOKEN,
        emu3.EOF_TOKEN,
        emu3.SEPARATOR_TOKEN,
        "<image>",
    ]
    visual_tokens = [emu3_visual_token(code) for code in range(spec.num_image_codes)]
    tokenizer = build_byte_tokenizer(
        specials,
        specials,
        bos="<|extra_203|>",
        eos="<|extra_204|>",
        pad="<|endoftext|>",
        unk="<unk>",
        trailing_tokens=visual_tokens,
        merges=spec.text_merges,
    )
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.hidden_size * 2,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_heads,
        "max_position_embeddings": 1024,
        "attention_dropout": 0.0,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    channels = 32  # GroupNorm(32 groups) needs multiples of 32; the middle attention needs hidden_size == channels
    vq_config = {
        "codebook_size": spec.num_image_codes,
        "embed_dim": 4,
        "latent_channels": 4,
        "temporal_downsample_factor": 2,
        "base_channels": channels,
        "channel_multiplier": [1, 1, 1, 1],
        "num_res_blocks": 1,
        "attn_resolutions": [],
        "hidden_size": channels,
        "num_attention_heads": 1,
    }
    config = Emu3Config(text_config=text_config, vq_config=vq_config, vocabulary_map=tokenizer.get_vocab())
    model = Emu3ForConditionalGeneration(config).eval()
    zero_residual_branches(model.model.vqmodel)
    settings = BackboneConfig(arch="emu3", image_size=spec.image_size)
    processor = WorldModelProcessor(Emu3Backbone.default_image_processor("", settings), tokenizer)
    return Emu3Backbone(model, processor, settings)


TINY_PRESETS: dict[str, Callable[[TinySpec, VQModel | None], Backbone]] = {
    "chameleon": build_tiny_chameleon,
    "liquid": build_tiny_liquid,
    "emu3": build_tiny_emu3,
}


def build_tiny_backbone(arch: str, spec: TinySpec | None = None, vqgan: VQModel | None = None) -> Backbone:
    """Build a random tiny backbone of family ``arch`` in memory.

    Args:
        arch: ``chameleon``, ``liquid`` or ``emu3``.
        spec: Sizes and seed (defaults: :class:`TinySpec`).
        vqgan: Chameleon and Liquid only: a fitted VQGAN (:func:`wm_hub.training.vq_fitting.fit_vqgan`, or
            ``VQModel.from_pretrained`` of a saved one) instead of a random one; its codebook size and image size
            must be the spec's.
    """
    if arch not in TINY_PRESETS:
        raise ValueError(f"No tiny preset for {arch!r}; choose one of {sorted(TINY_PRESETS)}")
    return TINY_PRESETS[arch](spec or TinySpec(), vqgan)


def save_tiny_model(
    arch: str, out_dir: str | Path, spec: TinySpec | None = None, vqgan: VQModel | None = None
) -> Path:
    """Build a tiny backbone and save it as a checkpoint folder (what ``wm-hub tiny-model`` does)."""
    out_dir = Path(out_dir)
    build_tiny_backbone(arch, spec, vqgan).save_pretrained(out_dir)
    return out_dir
