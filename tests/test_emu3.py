"""Emu3 backend: tiny preset saved and reloaded through ``load_backbone``, real images from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from shared_data import require

from wm_hub.inference.generation import generate_images
from wm_hub.models.base import IGNORE_INDEX
from wm_hub.models.emu3 import Emu3Backbone
from wm_hub.models.loading import load_backbone
from wm_hub.models.tiny import TinySpec, build_tiny_emu3, save_tiny_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "aurora-bench-mini" / "data"
PNG_500 = DATA / "magicbrush" / "images" / "242679" / "242679-input.png"  # 500x500 RGB PNG
JPEG_456 = DATA / "epic" / "images" / "EPIC-KITCHENS_P34_rgb_frames_frame_0000000422.jpg"  # 456x256 RGB JPEG
ACTION = "put a cat on the seat"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_model("emu3", tmp_path_factory.mktemp("tiny-emu3"))


@pytest.fixture(scope="module")
def backbone(checkpoint) -> Emu3Backbone:
    return load_backbone(str(checkpoint))


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    require(PNG_500, JPEG_456)
    loaded = [Image.open(PNG_500), Image.open(JPEG_456)]
    assert [(image.format, image.size) for image in loaded] == [("PNG", (500, 500)), ("JPEG", (456, 256))]
    return loaded


def token(backbone: Emu3Backbone, name: str) -> int:
    return backbone.tokenizer.convert_tokens_to_ids(name)


# ----------------------------------------------------------------------------------------------------------------
# Loading and layout
# ----------------------------------------------------------------------------------------------------------------
def test_load_restores_the_saved_preset(backbone):
    assert isinstance(backbone, Emu3Backbone)
    assert backbone.config.arch == "emu3" and backbone.config.image_size == 64
    assert backbone.image_grid == (8, 8) and backbone.image_seq_len == 64
    assert backbone.bos_token_id == token(backbone, "<|extra_203|>")
    assert backbone.eos_token_id == token(backbone, "<|extra_204|>")
    assert backbone.pad_token_id == token(backbone, "<|endoftext|>")
    assert backbone.separator_token_id == token(backbone, "<|extra_0|>")
    assert backbone.eol_token_id == token(backbone, "<|extra_200|>")
    assert backbone.eof_token_id == token(backbone, "<|extra_201|>")
    fresh = build_tiny_emu3(TinySpec()).model.state_dict()
    loaded = backbone.model.state_dict()
    assert fresh.keys() == loaded.keys()
    assert all(torch.equal(fresh[key], loaded[key]) for key in fresh)
    assert not any(param.requires_grad for param in backbone.vqmodel.parameters())
    assert all(param.requires_grad for param in backbone.model.model.text_model.parameters())


def test_image_vocabulary_follows_emu3_visual_token_names(backbone):
    ids = backbone.image_token_ids
    assert len(ids) == 512 and torch.equal(ids, ids.sort().values)
    assert backbone.tokenizer.convert_ids_to_tokens(int(backbone.codes_to_ids(torch.tensor(7)))) == (
        "<|visual token 000007|>"
    )
    codes = torch.arange(512)
    assert torch.equal(backbone.ids_to_codes(backbone.codes_to_ids(codes)), codes)


def test_image_block_matches_emu3_processor_format(backbone):
    processor_prefix = backbone.tokenizer("<|image start|>8*8<|image token|>", add_special_tokens=False)["input_ids"]
    assert backbone.image_prefix_ids() == processor_prefix
    assert backbone.image_suffix_ids() == [token(backbone, "<|extra_201|>"), token(backbone, "<|image end|>")]
    body = backbone.image_body_ids(list(range(64)))
    assert len(body) == 8 * 9
    eol = backbone.eol_token_id
    for row in range(8):
        assert body[row * 9 : row * 9 + 8] == list(range(row * 8, row * 8 + 8))
        assert body[row * 9 + 8] == eol
    layout = backbone.generation_layout()
    assert len(layout) == 72 + 2 and int((layout == -1).sum()) == 64
    assert layout[8::9][:8].tolist() == [eol] * 8
    assert layout[-2:].tolist() == backbone.image_suffix_ids()
    with pytest.raises(ValueError, match="expected 64 image token ids"):
        backbone.image_body_ids([0] * 63)


def test_image_size_must_be_a_multiple_of_the_spatial_factor():
    with pytest.raises(ValueError, match="not a multiple of the Emu3 VQ spatial factor 8"):
        build_tiny_emu3(TinySpec(image_size=60))


# ----------------------------------------------------------------------------------------------------------------
# Image tokenizer
# ----------------------------------------------------------------------------------------------------------------
def test_preprocess_square_crop_and_alpha_on_white(backbone):
    wide = Image.new("RGB", (128, 64), (255, 0, 0))
    wide.paste((0, 0, 255), (32, 0, 96, 64))  # blue centre square, red borders left and right
    pixels = backbone.preprocess([wide, Image.new("RGBA", (40, 30), (0, 0, 0, 0))])
    assert pixels.shape == (2, 3, 64, 64) and pixels.dtype == torch.float32
    assert torch.allclose(pixels[0], torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1).expand(3, 64, 64))
    assert torch.equal(pixels[1], torch.ones(3, 64, 64))  # fully transparent -> white


def test_encode_real_images_matches_transformers_vq(backbone, images):
    ids, features = backbone.encode_images_with_features(images)
    assert ids.shape == (2, 64) and ids.dtype == torch.long
    assert torch.isin(ids, backbone.image_token_ids).all()
    assert torch.equal(backbone.encode_images(images), ids)

    pixels = backbone._pixels(images)
    reference = backbone.vqmodel.encode(pixels, image_sizes=torch.tensor([[64, 64]] * 2))
    assert torch.equal(backbone.ids_to_codes(ids), torch.stack(reference.image_tokens).flatten(1))
    assert not torch.equal(ids[0], ids[1])

    assert features.shape == (2, 64, backbone.vqmodel.config.embed_dim) == (2, 64, 4)
    assert torch.allclose(backbone.prequant_features(images), features)
    # Features are in token order: each one's nearest codebook entry is that token's code.
    codebook = backbone.vqmodel.quantize.embedding.weight.float()
    nearest = torch.cdist(features, codebook[None].expand(2, -1, -1)).argmin(-1)
    assert torch.equal(nearest, backbone.ids_to_codes(ids))


def test_decode_images(backbone, images):
    decoded = backbone.decode_images(backbone.encode_images(images))
    assert len(decoded) == 2
    assert all(image.size == (64, 64) and image.mode == "RGB" for image in decoded)
    with pytest.raises(ValueError, match="outside the image vocabulary"):
        backbone.decode_images(torch.full((1, 64), backbone.eol_token_id))


def test_bfloat16_keeps_tokenizing_and_decoding(images):
    backbone = build_tiny_emu3(TinySpec()).to(dtype=torch.bfloat16)
    assert backbone.vqmodel.dtype == torch.bfloat16
    ids, features = backbone.encode_images_with_features(images)
    assert ids.shape == (2, 64) and torch.isin(ids, backbone.image_token_ids).all()
    assert features.shape == (2, 64, 4) and features.dtype == torch.float32
    assert [image.size for image in backbone.decode_images(ids)] == [(64, 64)] * 2


# ----------------------------------------------------------------------------------------------------------------
# Sequences
# ----------------------------------------------------------------------------------------------------------------
def test_fdm_sequence_labels_the_target_block_only(backbone, images):
    source, target = images
    source_ids, target_ids = backbone.encode_images(images)
    example = backbone.build_fdm_sequence(source, ACTION, target)
    input_ids, labels = torch.tensor(example.input_ids), torch.tensor(example.labels)
    prompt_len = int((labels != IGNORE_INDEX).nonzero()[0])
    prompt = backbone.build_fdm_sequence(source, ACTION)
    assert example.input_ids[:prompt_len] == prompt.input_ids
    assert prompt.input_ids[-5:] == backbone.image_prefix_ids()
    assert (labels[:prompt_len] == IGNORE_INDEX).all()
    completion = backbone.image_body_ids(target_ids.tolist()) + backbone.image_suffix_ids() + [backbone.eos_token_id]
    assert example.input_ids[prompt_len:] == completion
    assert labels[prompt_len:].tolist() == completion

    assert torch.equal(input_ids[example.target_image_positions], target_ids)
    assert torch.equal(input_ids[example.source_image_positions], source_ids)
    row_ends = torch.tensor(example.target_image_positions).view(8, 8)[:, -1]
    assert (input_ids[row_ends + 1] == backbone.eol_token_id).all()
    assert int((input_ids[prompt_len:] == backbone.eol_token_id).sum()) == 8
    assert input_ids[row_ends[-1] + 2 :].tolist() == [*backbone.image_suffix_ids(), backbone.eos_token_id]


def test_idm_sequence_labels_the_action_only(backbone, images):
    example = backbone.build_idm_sequence(images[0], images[1], ACTION)
    action_ids = backbone.tokenizer(ACTION, add_special_tokens=False)["input_ids"]
    labelled = [label for label in example.labels if label != IGNORE_INDEX]
    assert labelled == action_ids + [backbone.eos_token_id]
    assert example.labels[-len(labelled) :] == labelled
    assert example.input_ids[-len(labelled) - 1] == backbone.separator_token_id
    eol_count = example.input_ids.count(backbone.eol_token_id)
    assert eol_count == 16 and example.input_ids.count(backbone.eof_token_id) == 2


def test_loss_on_image_labels_is_finite_and_unsuppressed(backbone, images):
    example = backbone.build_fdm_sequence(images[0], ACTION, images[1])
    input_ids, labels = torch.tensor([example.input_ids]), torch.tensor([example.labels])
    with torch.no_grad():
        output = backbone.model(input_ids=input_ids, labels=labels)
    assert torch.isfinite(output.loss) and output.loss > 0
    assert torch.isfinite(output.logits[0, :, backbone.image_token_ids]).all()
    expected = F.cross_entropy(output.logits[0, :-1].float(), labels[0, 1:], ignore_index=IGNORE_INDEX)
    assert torch.allclose(output.loss, expected, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------------------
def test_generate_images_emits_well_formed_emu3_blocks(backbone, images):
    prompt = backbone.build_fdm_sequence(images[0], ACTION).input_ids
    output = generate_images(backbone, [prompt], num_candidates=3, seed=0)
    assert output.image_ids.shape == (1, 3, 64)
    assert torch.isin(output.image_ids, backbone.image_token_ids).all()
    assert len({tuple(ids.tolist()) for ids in output.image_ids[0]}) == 3  # independent samples

    generated = output.sequences[:, len(prompt) :]
    assert generated.shape == (3, 72 + 2)
    assert (generated[:, 8::9][:, :8] == backbone.eol_token_id).all()
    assert generated[:, -2:].tolist() == [backbone.image_suffix_ids()] * 3
    for row in range(3):
        expected = backbone.image_body_ids(output.image_ids[0, row].tolist()) + backbone.image_suffix_ids()
        assert generated[row].tolist() == expected

    assert len(output.images) == 1 and len(output.images[0]) == 3
    assert all(image.size == (64, 64) for image in output.images[0])

    again = generate_images(backbone, [prompt], num_candidates=3, seed=0, decode=False)
    assert torch.equal(again.image_ids, output.image_ids)
    assert again.images is None
