"""What a sandbox model can do, measured on held-out scenes: read, compare, write, copy, edit, and the dynamics.

:func:`measure_base` is what the base's model card reports: caption and difference-list exact match (greedy),
drawing (description -> picture), copying (picture + "no change" -> the same picture) and editing (picture + change
list -> picture) as whole-picture exactness and cell accuracy, and, before any fine-tuning, the IDM exact match and
the FDM's changed-cell accuracy in the IDM/FDM formats (a base that knows no actions should score about 0 on both;
copying the source scores 0 changed cells).
"""

from __future__ import annotations

import random
from typing import Any

import torch

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.inference.actions import generate_actions
from wm_hub.inference.generation import generate_images
from wm_hub.models.base import Backbone
from wm_hub.sandbox.cells import scene_contents
from wm_hub.sandbox.text import (
    CAPTION_INSTRUCTION,
    DIFFERENCES_INSTRUCTION,
    DRAW_INSTRUCTION,
    NO_CHANGE,
    REDRAW_INSTRUCTION,
    describe_changes,
    describe_scene,
    lookup_answer,
    lookup_question,
    relation_answer,
    relation_question,
    spatial_offset,
)


def image_scores(predicted: torch.Tensor, truth: torch.Tensor, changed: torch.Tensor | None = None) -> dict:
    """Whole-picture exactness and cell accuracy of ``(N, cells)`` predicted contents (and on ``changed`` cells)."""
    right = predicted == truth
    scores = {"whole_image": float(right.all(dim=1).float().mean()), "all_cells": float(right.float().mean())}
    if changed is not None:
        scores["changed_cells"] = float(right[changed].float().mean())
    return scores


@torch.no_grad()
def measure_dynamics(
    backbone: Backbone, world: WorldConfig, num: int = 100, seed: int = 0, tasks: tuple[str, ...] = ("idm", "fdm")
) -> dict[str, Any]:
    """IDM exact match (greedy) and the FDM's greedy :func:`image_scores` on the first ``num`` test triplets.

    Args:
        backbone: The model, read as an IDM and as an FDM.
        world: The world whose test triplets are measured.
        num: Test triplets.
        seed: Generation seed.
        tasks: What to measure: ``"idm"`` (key ``idm_exact_match``, and ``examples``), ``"fdm"`` (key ``fdm``).
    """
    unknown = sorted(set(tasks) - {"idm", "fdm"})
    if unknown or not tasks:
        raise ValueError(f"tasks must be some of ('idm', 'fdm'), got {tasks}")
    triplets = [ShapesWorld(world).triplet("test", index) for index in range(num)]
    sources = torch.stack([scene_contents(t.source_scene, world) for t in triplets])
    targets = torch.stack([scene_contents(t.target_scene, world) for t in triplets])
    source_ids = [backbone.codes_to_ids(row).tolist() for row in sources]
    result: dict[str, Any] = {}
    if "idm" in tasks:
        target_ids = [backbone.codes_to_ids(row).tolist() for row in targets]
        labels = generate_actions(backbone, list(zip(source_ids, target_ids)), max_new_tokens=24)
        result["idm_exact_match"] = sum(a == t.action.text for a, t in zip(labels, triplets)) / num
        result["examples"] = [{"idm": a, "truth": t.action.text} for a, t in zip(labels[:3], triplets[:3])]
    if "fdm" in tasks:
        predicted = greedy_next_codes(backbone, sources, [t.action.text for t in triplets], seed)
        result["fdm"] = image_scores(predicted, targets, targets != sources)
    return result


@torch.no_grad()
def greedy_next_codes(backbone: Backbone, sources: torch.Tensor, actions: list[str], seed: int = 0) -> torch.Tensor:
    """The FDM's greedy prediction: ``(N, cells)`` image codes after ``actions`` from ``(N, cells)`` source codes."""
    prompts = [
        backbone.build_fdm_sequence(backbone.codes_to_ids(row).tolist(), action).input_ids
        for row, action in zip(sources, actions)
    ]
    predicted = generate_images(backbone, prompts, top_k=1, seed=seed, decode=False).image_ids[:, 0]
    return backbone.ids_to_codes(predicted)


@torch.no_grad()
def measure_base(backbone: Backbone, world: WorldConfig, num: int = 100, seed: int = 0) -> dict[str, Any]:
    """Reading, comparing, writing, copying, editing and the dynamics on the first ``num`` test triplets."""
    triplets = [ShapesWorld(world).triplet("test", index) for index in range(num)]
    scenes, afters = [t.source_scene for t in triplets], [t.target_scene for t in triplets]
    truth = torch.stack([scene_contents(scene, world) for scene in scenes])
    after_truth = torch.stack([scene_contents(scene, world) for scene in afters])
    ids = [backbone.codes_to_ids(row).tolist() for row in truth]
    after_ids = [backbone.codes_to_ids(row).tolist() for row in after_truth]
    text, sep, bos = backbone._text_ids, backbone.separator_token_id, backbone.bos_token_id
    rng = random.Random(f"measure_base/{seed}")

    def block(image_ids: list[int]) -> list[int]:
        return backbone.image_prefix_ids() + backbone.image_body_ids(image_ids) + backbone.image_suffix_ids()

    def greedy_images(prompts: list[list[int]]) -> torch.Tensor:
        ids = generate_images(backbone, prompts, top_k=1, seed=seed, decode=False).image_ids[:, 0]
        return backbone.ids_to_codes(ids)

    def greedy_texts(prompts: list[list[int]]) -> list[str]:
        width = max(len(prompt) for prompt in prompts)  # left-padded: every answer starts at the same column
        ids = torch.tensor([[backbone.pad_token_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        generated = backbone.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=80, do_sample=False,
            eos_token_id=backbone.eos_token_id, pad_token_id=backbone.pad_token_id,
        )  # fmt: skip
        decoded = backbone.tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
        return [answer.strip() for answer in decoded]

    captions = greedy_texts([[bos, *text(CAPTION_INSTRUCTION), *block(row), sep] for row in ids])
    changes = greedy_texts([[bos, *block(a), *block(b), *text(DIFFERENCES_INSTRUCTION), sep]
                            for a, b in zip(ids, after_ids)])  # fmt: skip
    drawn = greedy_images([[bos, *text(DRAW_INSTRUCTION), *text(describe_scene(s)), sep, *backbone.image_prefix_ids()]
                           for s in scenes])  # fmt: skip

    def redraw(changes: list[str]) -> torch.Tensor:
        return greedy_images([[bos, *text(REDRAW_INSTRUCTION), *block(row), *text(change), sep,
                               *backbone.image_prefix_ids()] for row, change in zip(ids, changes)])  # fmt: skip

    relation_pairs = [rng.sample(scene.objects, 2) for scene in scenes]
    relations = greedy_texts([[bos, *block(row), *text(relation_question(a.name, b.name)), sep]
                              for row, (a, b) in zip(ids, relation_pairs)])  # fmt: skip
    lookups = [(scene, anchor, spatial_offset(rng, scene, anchor, world.grid, world.max_move))
               for scene in scenes for anchor in [rng.choice(scene.objects)]]  # fmt: skip
    looked_up = greedy_texts([[bos, *block(row), *text(lookup_question(anchor.name, *offset)), sep]
                              for row, (_, anchor, offset) in zip(ids, lookups)])  # fmt: skip
    copied = redraw([NO_CHANGE] * num)
    edited = redraw([describe_changes(a, b) for a, b in zip(scenes, afters)])
    dynamics = measure_dynamics(backbone, world, num, seed)
    return {
        "num": num,
        "caption_exact_match": sum(a == describe_scene(s) for a, s in zip(captions, scenes)) / num,
        "differences_exact_match": sum(c == describe_changes(a, b) for c, a, b in zip(changes, scenes, afters)) / num,
        "relation_exact_match": sum(
            answer == relation_answer(a, b) for answer, (a, b) in zip(relations, relation_pairs)
        )
        / num,
        "lookup_exact_match": sum(
            answer == lookup_answer(scene, anchor, offset, world)
            for answer, (scene, anchor, offset) in zip(looked_up, lookups)
        )
        / num,
        "draw": image_scores(drawn, truth),
        "copy": image_scores(copied, truth),
        "edit": image_scores(edited, after_truth, after_truth != truth),
        "idm_exact_match_before_fine_tuning": dynamics["idm_exact_match"],
        "fdm_before_fine_tuning": dynamics["fdm"],
        "examples": [{"caption": c, "truth": describe_scene(s)} for c, s in zip(captions[:3], scenes[:3])]
        + [{"differences": c, "truth": describe_changes(a, b)} for c, a, b in zip(changes[:3], scenes, afters)]
        + dynamics["examples"],
    }
