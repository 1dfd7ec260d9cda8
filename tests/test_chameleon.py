"""Chameleon LM without image-logit suppression, and batched image generation through it."""

from __future__ import annotations

import pytest
import torch
from transformers import ChameleonForConditionalGeneration

from wm_hub.inference.generation import generate_images
from wm_hub.models.chameleon import ChameleonWorldModelForConditionalGeneration


@pytest.fixture(scope="module")
def chameleon(tiny_backbones):
    return tiny_backbones("chameleon")


def test_subclass_loads_stock_state_dict_strictly(chameleon):
    torch.manual_seed(3)
    stock = ChameleonForConditionalGeneration(chameleon.model.config).eval()
    ours = ChameleonWorldModelForConditionalGeneration(chameleon.model.config).eval()
    result = ours.load_state_dict(stock.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    input_ids = torch.tensor([[chameleon.bos_token_id, 300, 301, chameleon.boi_token_id]])
    with torch.no_grad():
        stock_logits, our_logits = stock(input_ids=input_ids).logits, ours(input_ids=input_ids).logits
    text = torch.ones(our_logits.shape[-1], dtype=torch.bool)
    text[chameleon.image_token_ids] = False
    torch.testing.assert_close(our_logits[..., text], stock_logits[..., text])
    assert (stock_logits[..., chameleon.image_token_ids] == torch.finfo(stock_logits.dtype).min).all()
    assert torch.isfinite(our_logits[..., chameleon.image_token_ids]).all()


def test_image_labels_give_inf_loss_in_stock_class_and_finite_loss_in_ours(chameleon, real_images):
    example = chameleon.build_fdm_sequence(real_images[0], "turn the cube", real_images[1])
    input_ids, labels = torch.tensor([example.input_ids]), torch.tensor([example.labels])
    stock = ChameleonForConditionalGeneration(chameleon.model.config).eval()
    stock.load_state_dict(chameleon.model.state_dict())
    with torch.no_grad():
        assert torch.isinf(stock(input_ids=input_ids, labels=labels).loss)
        assert torch.isfinite(chameleon.model(input_ids=input_ids, labels=labels).loss)


def test_generation_n_candidates_in_one_call(chameleon, monkeypatch):
    calls = []
    original = chameleon.model.generate

    def counting_generate(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape)
        cached.append(kwargs[cache_argument(chameleon.model)].get_seq_length())
        return original(*args, **kwargs)

    cached = []
    monkeypatch.setattr(chameleon.model, "generate", counting_generate)
    from PIL import Image

    from wm_hub.inference.kv_cache import cache_argument

    prompts = [
        chameleon.build_fdm_sequence(Image.new("RGB", (40, 30), (200, 0, 0)), "push the block").input_ids,
        chameleon.build_fdm_sequence(
            Image.new("L", (30, 50), 90), "a longer action to pad the other prompt"
        ).input_ids,
    ]
    output = generate_images(chameleon, prompts, num_candidates=3, seed=0, top_k=100, temperature=0.9)
    # one generate call for the 3 candidates of both prompts, continuing from the prompts read once (all but the last
    # token of the longer, left-padded prompt are in the cache)
    assert len(calls) == 1 and calls[0][0] == 6 and cached == [calls[0][1] - 1]
    assert output.image_ids.shape == (2, 3, chameleon.image_seq_len)
    assert torch.isin(output.image_ids, chameleon.image_token_ids).all()
    generated = output.sequences[:, calls[0][1] :]
    assert generated.shape[1] == chameleon.image_seq_len + 1
    assert torch.isin(generated[:, :-1], chameleon.image_token_ids).all()
    assert (generated[:, -1] == chameleon.eoi_token_id).all()
    assert len(output.images) == 2 and all(len(row) == 3 for row in output.images)
    assert {image.size for row in output.images for image in row} == {(64, 64)}
    # candidates differ, and the same seed reproduces them
    assert not torch.equal(output.image_ids[0, 0], output.image_ids[0, 1])
    again = generate_images(chameleon, prompts, num_candidates=3, seed=0, top_k=100, temperature=0.9, decode=False)
    assert torch.equal(again.image_ids, output.image_ids) and again.images is None


def test_top_k_one_is_greedy_over_image_tokens(chameleon):
    from PIL import Image

    prompt = chameleon.build_fdm_sequence(Image.new("RGB", (64, 64)), "wait").input_ids
    first = generate_images(chameleon, [prompt], num_candidates=2, seed=1, top_k=1, decode=False).image_ids
    second = generate_images(chameleon, [prompt], num_candidates=1, seed=2, top_k=1, decode=False).image_ids
    assert torch.equal(first[0, 0], first[0, 1]) and torch.equal(first[0, 0], second[0, 0])
    with torch.no_grad():
        logits = chameleon.model(input_ids=torch.tensor([prompt])).logits[0, -1]
    assert int(first[0, 0, 0]) == int(chameleon.image_token_ids[logits[chameleon.image_token_ids].argmax()])


def test_static_cache_matches_dynamic_cache(chameleon):
    from PIL import Image

    prompt = chameleon.build_fdm_sequence(Image.new("RGB", (64, 64), (0, 90, 0)), "wait").input_ids
    dynamic = generate_images(chameleon, [prompt], num_candidates=2, seed=4, decode=False).image_ids
    static = generate_images(chameleon, [prompt], 2, seed=4, cache_implementation="static", decode=False).image_ids
    assert torch.equal(dynamic, static)


def test_generation_rejects_prompt_without_image_prefix(chameleon):
    with pytest.raises(ValueError, match="prompt 0 does not end with the image prefix"):
        generate_images(chameleon, [[chameleon.bos_token_id, 300]])
    with pytest.raises(ValueError, match="temperature"):
        generate_images(chameleon, [[chameleon.boi_token_id]], temperature=0)
