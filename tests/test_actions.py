"""Batched IDM action generation: same text as one pair at a time, never an image token."""

from __future__ import annotations

import torch

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.inference.actions import generate_actions, generate_idm_outputs
from wm_hub.inference.generation import left_pad


def test_batched_actions_equal_single_pair_generation(tiny_backbones):
    idm = tiny_backbones("chameleon")
    world = ShapesWorld(WorldConfig())
    pairs = [(t.source, t.target) for t in (world.triplet("test", i) for i in range(3))]
    batched = generate_actions(idm, pairs, max_new_tokens=12)
    assert len(batched) == 3 and all(isinstance(text, str) for text in batched)
    assert batched == [generate_actions(idm, [pair], max_new_tokens=12)[0] for pair in pairs]
    # The random tiny LM puts mass on image tokens too: they are suppressed, so the greedy text decodes cleanly.
    ids = idm.tokenizer(batched[0], add_special_tokens=False).input_ids
    assert not set(ids) & set(idm.image_token_ids.tolist())


def test_sampled_actions_follow_the_seed(tiny_backbones):
    idm = tiny_backbones("chameleon")
    world = ShapesWorld(WorldConfig())
    pair = (world.triplet("test", 0).source, world.triplet("test", 0).target)
    first = generate_actions(idm, [pair] * 4, max_new_tokens=8, do_sample=True, seed=3)
    again = generate_actions(idm, [pair] * 4, max_new_tokens=8, do_sample=True, seed=3)
    assert first == again
    assert len(set(first)) > 1  # four samples of a random LM differ
    assert torch.initial_seed() == 3


def test_the_outputs_are_those_of_a_plain_generate_call(tiny_backbones):
    """The in-place KV cache and the kept log-probabilities change nothing of what is generated."""
    idm = tiny_backbones("chameleon")
    world = ShapesWorld(WorldConfig())
    pairs = [(t.source, t.target) for t in (world.triplet("test", i) for i in range(3))]
    outputs = generate_idm_outputs(idm, pairs, max_new_tokens=10)
    prompts = [idm.build_idm_sequence(source, target).input_ids for source, target in pairs]
    input_ids, attention_mask = left_pad(prompts, idm.pad_token_id)
    plain = idm.model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        do_sample=False,
        max_new_tokens=10,
        eos_token_id=idm.eos_token_id,
        pad_token_id=idm.pad_token_id,
        suppress_tokens=idm.image_token_ids.tolist(),
    )[:, input_ids.shape[1] :].tolist()
    for output, ids in zip(outputs, plain):
        end = ids.index(idm.eos_token_id) + 1 if idm.eos_token_id in ids else len(ids)
        assert list(output.token_ids) == ids[:end]
