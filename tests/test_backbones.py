"""The backbone interface on every tiny preset, through the same load path as real checkpoints."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from wm_hub import load_backbone
from wm_hub.models.base import IGNORE_INDEX
from wm_hub.models.tiny import TinySpec, build_tiny_backbone, fit_byte_merges

ARCHS = ["chameleon", "liquid", "emu3"]


@pytest.mark.parametrize("arch", ARCHS)
def test_encode_decode_real_images(arch, tiny_backbones, real_images):
    backbone = tiny_backbones(arch)
    ids = backbone.encode_images(real_images)
    assert ids.dtype == torch.long
    assert ids.shape == (2, backbone.image_seq_len) == (2, 64)
    assert torch.isin(ids, backbone.image_token_ids).all()
    assert not torch.equal(ids[0], ids[1]), "two different images should not tokenize identically"
    images = backbone.decode_images(ids)
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    assert all(image.mode == "RGB" for image in images)
    features = backbone.prequant_features(real_images)
    assert features.shape[:2] == (2, backbone.image_seq_len)
    assert features.shape[2] > 0 and features.std() > 0
    both_ids, both_features = backbone.encode_images_with_features(real_images)
    assert torch.equal(both_ids, ids)
    torch.testing.assert_close(both_features, features)


@pytest.mark.parametrize("arch", ARCHS)
def test_images_as_ids_encodes_the_pictures_in_one_batch_and_keeps_given_ids(arch, tiny_backbones, real_images):
    backbone = tiny_backbones(arch)
    given = backbone.encode_images([real_images[1]])[0]
    calls, encode = [], backbone.encode_images
    backbone.encode_images = lambda images: calls.append(len(images)) or encode(images)
    try:
        mixed = backbone.images_as_ids([real_images[0], given, real_images[1], real_images[0]])
    finally:
        del backbone.encode_images
    assert calls == [3]  # the three pictures, one encoder call
    assert mixed[1] is given
    assert torch.equal(torch.as_tensor(mixed[0]), backbone.encode_images([real_images[0]])[0])
    assert torch.equal(torch.as_tensor(mixed[2]), given) and torch.equal(torch.as_tensor(mixed[3]), mixed[0])


@pytest.mark.parametrize("arch", ARCHS)
def test_codes_round_trip_through_lm_ids(arch, tiny_backbones):
    backbone = tiny_backbones(arch)
    codes = torch.arange(len(backbone.image_token_ids))
    ids = backbone.codes_to_ids(codes)
    assert torch.equal(ids.sort().values, backbone.image_token_ids)
    assert torch.equal(backbone.ids_to_codes(ids), codes)
    text_ids = backbone.tokenizer("open the drawer", add_special_tokens=False)["input_ids"]
    assert not torch.isin(torch.tensor(text_ids), backbone.image_token_ids).any()


@pytest.mark.parametrize("arch", ARCHS)
def test_decode_rejects_text_ids(arch, tiny_backbones):
    backbone = tiny_backbones(arch)
    bad = torch.full((2, backbone.image_seq_len), int(backbone.image_token_ids[0]))
    bad[1, 5] = backbone.eos_token_id
    with pytest.raises(ValueError, match="row 1"):
        backbone.decode_images(bad)


@pytest.mark.parametrize("arch", ARCHS)
def test_an_action_that_spells_control_tokens_is_written_as_plain_text(arch, tiny_backbones):
    backbone = tiny_backbones(arch)
    tokenizer = backbone.tokenizer
    image_name = tokenizer.convert_ids_to_tokens(int(backbone.image_token_ids[0]))
    action = f"open {tokenizer.eos_token} {tokenizer.bos_token} {image_name} " + " ".join(
        tokenizer.convert_ids_to_tokens(backbone.image_prefix_ids())
    )
    ids = backbone.processor.text_ids(action)
    controls = set(tokenizer.get_added_vocab().values())  # specials and image codes (Emu3's prefix also has digits)
    assert not controls & set(ids) and not torch.isin(torch.tensor(ids), backbone.image_token_ids).any()
    assert len(ids) > 20 and tokenizer.decode(ids) == action  # each name spelled in ordinary tokens
    sequence = backbone.build_fdm_sequence(backbone.image_token_ids[: backbone.image_seq_len], action).input_ids
    assert any(sequence[start : start + len(ids)] == ids for start in range(len(sequence)))


@pytest.mark.parametrize("arch", ARCHS)
def test_fdm_sequence_labels_only_completion(arch, tiny_backbones, real_images):
    backbone = tiny_backbones(arch)
    source, target = real_images
    example = backbone.build_fdm_sequence(source, "pick up the cube", target)
    ids, labels = torch.tensor(example.input_ids), torch.tensor(example.labels)
    target_ids = backbone.encode_images([target])[0]
    assert torch.equal(ids[example.target_image_positions], target_ids)
    assert torch.equal(ids[example.source_image_positions], backbone.encode_images([source])[0])
    start = example.target_image_positions[0]
    prefix = backbone.image_prefix_ids()
    # prompt: everything up to and including the target's image prefix (boi...) is ignored
    assert ids[start - len(prefix) : start].tolist() == prefix and prefix[0] == backbone.boi_token_id
    assert (labels[:start] == IGNORE_INDEX).all()
    # completion: target image block (codes and layout tokens), eoi, eos - all labelled with themselves
    assert torch.equal(labels[start:], ids[start:])
    assert ids[-2:].tolist() == [backbone.eoi_token_id, backbone.eos_token_id]
    assert len(ids) - start == len(backbone.generation_layout()) + 1
    # the action and separator sit before the target block
    action_ids = backbone.tokenizer("pick up the cube", add_special_tokens=False)["input_ids"]
    separator = start - len(prefix) - 1
    assert ids[separator] == backbone.separator_token_id
    assert ids[separator - len(action_ids) : separator].tolist() == action_ids
    assert ids[0] == backbone.bos_token_id
    # the prompt form is the same sequence cut before the target
    prompt = backbone.build_fdm_sequence(source, "pick up the cube")
    assert prompt.input_ids == example.input_ids[:start]
    assert prompt.target_image_positions == []


@pytest.mark.parametrize("arch", ARCHS)
def test_idm_sequence_labels_only_action(arch, tiny_backbones, real_images):
    backbone = tiny_backbones(arch)
    source, target = real_images
    source_ids, target_ids = backbone.encode_images(real_images)
    example = backbone.build_idm_sequence(source_ids, target_ids, "pick up the cube")
    from_images = backbone.build_idm_sequence(source, target, "pick up the cube")
    assert example.input_ids == from_images.input_ids
    ids, labels = torch.tensor(example.input_ids), torch.tensor(example.labels)
    action_ids = backbone.tokenizer("pick up the cube", add_special_tokens=False)["input_ids"]
    completion = (labels != IGNORE_INDEX).nonzero().flatten()
    assert labels[completion].tolist() == action_ids + [backbone.eos_token_id]
    assert completion.tolist() == list(range(len(ids) - len(action_ids) - 1, len(ids)))
    assert ids[completion[0] - 1] == backbone.separator_token_id
    assert torch.equal(ids[example.source_image_positions], source_ids)
    assert torch.equal(ids[example.target_image_positions], target_ids)
    assert example.source_image_positions[-1] < example.target_image_positions[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_sequence_rejects_wrong_image_length(arch, tiny_backbones):
    backbone = tiny_backbones(arch)
    short = backbone.image_token_ids[:10]
    with pytest.raises(ValueError, match=f"expected {backbone.image_seq_len} image token ids, got 10"):
        backbone.build_fdm_sequence(short, "push")


@pytest.mark.parametrize("arch", ARCHS)
def test_image_label_loss_is_finite_and_trains(arch, tiny_backbones, real_images):
    backbone = tiny_backbones(arch)
    example = backbone.build_fdm_sequence(*real_images[:1], "move left", real_images[1])
    input_ids, labels = torch.tensor([example.input_ids]), torch.tensor([example.labels])
    loss = backbone.model(input_ids=input_ids, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    grad = backbone.model.get_input_embeddings().weight.grad
    assert grad is not None and grad[backbone.image_token_ids].abs().sum() > 0
    backbone.model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_encode_rejects_non_images(arch, tiny_backbones):
    with pytest.raises(TypeError, match="item 1 is str"):
        tiny_backbones(arch).encode_images([Image.new("RGB", (8, 8)), "frame.png"])


@pytest.mark.parametrize("arch", ARCHS)
def test_text_merges_shorten_the_text_and_keep_the_vocabulary_layout(arch, tiny_backbones, tmp_path):
    action = "move the cyan circle up by 3 cells"
    merges = fit_byte_merges([action, "move the red square left by 1 cell", "What action turns it?"], 300)
    assert 0 < len(merges) <= 300 - 256
    plain = tiny_backbones(arch)
    merged = build_tiny_backbone(arch, TinySpec(text_merges=merges))
    tokenizer, plain_tokenizer = merged.processor.tokenizer, plain.processor.tokenizer
    assert len(tokenizer) == len(plain_tokenizer) + len(merges)
    shift = len(merges) if arch == "liquid" else 0  # Liquid's codes follow the whole text vocabulary
    assert torch.equal(merged.image_token_ids, plain.image_token_ids + shift)
    assert [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id] == [
        plain_tokenizer.bos_token_id,
        plain_tokenizer.eos_token_id,
        plain_tokenizer.pad_token_id,
    ]
    ids = tokenizer(action, add_special_tokens=False).input_ids
    assert len(ids) < len(plain_tokenizer(action, add_special_tokens=False).input_ids) == len(action)
    assert tokenizer.decode(ids) == action
    merged.save_pretrained(tmp_path / arch)
    loaded = load_backbone(str(tmp_path / arch))
    assert loaded.processor.tokenizer(action, add_special_tokens=False).input_ids == ids
