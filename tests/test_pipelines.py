"""pipeline("forward-dynamics") / pipeline("inverse-dynamics"): tiny models saved to disk, run in a fresh process.

The subprocess only knows the folders (``import wm_hub`` registers the tasks); everything it returns is checked here
against the primitives it must equal: ``generate_images`` with the same seed for the samples, per-row
``action_log_likelihoods`` for the verifier scores, ``generate_actions`` for the IDM text.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wm_hub.cli import main
from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.inference.actions import generate_actions
from wm_hub.inference.generation import generate_images
from wm_hub.inference.kv_cache import cache_argument
from wm_hub.inference.scoring import action_log_likelihoods

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = ["move the red square left by 2 cells", "remove the blue circle", "add a green triangle"]

FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import wm_hub  # registers the tasks
    from transformers import pipeline

    fdm_dir, idm_dir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    src0, src1, tgt0 = (str(out / name) for name in ("src0.png", "src1.png", "tgt0.png"))
    actions = json.loads((out / "actions.json").read_text())
    fdm = pipeline("forward-dynamics", model=fdm_dir)
    idm = pipeline("inverse-dynamics", model=idm_dir)
    report = {"fdm_class": type(fdm.model).__name__, "fdm_pipeline": type(fdm).__name__}

    def save(image, name):
        image.save(out / name)
        return {"file": name, "size": list(image.size), "mode": image.mode, "type": type(image).__name__}

    single = fdm(src0, actions[0], seed=11, return_image_ids=True)
    report["single"] = {
        "keys": sorted(single), "image": save(single["image"], "single.png"), "score": single["score"],
        "candidates": single["candidates"], "scores": single["scores"], "image_ids": single["image_ids"].tolist(),
    }
    best = fdm(src0, actions[0], num_candidates=4, verifier=idm_dir, seed=12, return_candidates=True)
    report["best"] = {
        "image": save(best["image"], "best.png"), "score": best["score"], "scores": best["scores"],
        "candidates": [save(c, f"best_c{i}.png") for i, c in enumerate(best["candidates"])],
    }
    batch = fdm([src0, src1], actions[:2], num_candidates=2, verifier=idm, seed=13, return_candidates=True)
    report["batch"] = [
        {"image": save(r["image"], f"batch{b}.png"), "score": r["score"], "scores": r["scores"],
         "candidates": [save(c, f"batch{b}_c{i}.png") for i, c in enumerate(r["candidates"])]}
        for b, r in enumerate(batch)
    ]
    steps = fdm(src0, actions=actions, seed=14, return_image_ids=True)
    report["rollout"] = [
        {"image": save(s["image"], f"step{i}.png"), "image_ids": s["image_ids"].tolist()} for i, s in enumerate(steps)
    ]
    said = idm(src0, tgt0, do_sample=True, seed=5, max_new_tokens=6)
    report["idm"] = {
        "keys": sorted(said), "action": said["action"], "score": said["score"],
        "given": idm.score(src0, tgt0, actions[0]),
        "given_mean": idm.score(src0, tgt0, actions[0], reduction="mean"),
    }
    (out / "report.json").write_text(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def model_dirs(tiny_model_dirs):
    """The FDM is a tiny Chameleon, the IDM a tiny Liquid (its own VQGAN and vocabulary: nothing is shared)."""
    return {"fdm": tiny_model_dirs("chameleon"), "idm": tiny_model_dirs("liquid")}


@pytest.fixture(scope="module")
def world_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline-inputs")
    world = ShapesWorld(WorldConfig())
    first, second = world.triplet("test", 0), world.triplet("test", 1)
    for name, image in (("src0.png", first.source), ("src1.png", second.source), ("tgt0.png", first.target)):
        image.save(folder / name)
    (folder / "actions.json").write_text(json.dumps(ACTIONS))
    return folder


@pytest.fixture(scope="module")
def fresh(model_dirs, world_images):
    """Run the pipelines in a new Python process; returns the report and the folder of saved images."""
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS_SCRIPT,
            str(model_dirs["fdm"]),
            str(model_dirs["idm"]),
            str(world_images),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads((world_images / "report.json").read_text()), world_images


def _png(folder, name) -> Image.Image:
    with Image.open(folder / name) as image:
        return image.convert("RGB")


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def _prompt(backbone, image, action):
    return backbone.build_fdm_sequence(image, action).input_ids


def test_forward_dynamics_loads_the_unsuppressed_backbone_and_samples_image_tokens(fresh, tiny_backbones):
    report, _ = fresh
    assert report["fdm_pipeline"] == "ForwardDynamicsPipeline"
    # Not transformers' ChameleonForConditionalGeneration, whose forward sets every image logit to finfo.min.
    assert report["fdm_class"] == "ChameleonWorldModelForConditionalGeneration"
    ids = report["single"]["image_ids"]
    fdm = tiny_backbones("chameleon")
    assert len(ids) == fdm.image_seq_len
    assert set(ids) <= set(fdm.image_token_ids.tolist())
    assert len(set(ids)) > fdm.image_seq_len // 4  # sampled codes, not one repeated token


def test_single_sample_equals_plain_sampling_with_the_same_seed(fresh, tiny_backbones):
    report, folder = fresh
    single = report["single"]
    assert single["keys"] == ["candidates", "image", "image_ids", "score", "scores"]
    assert single["image"]["type"] == "Image" and single["image"]["mode"] == "RGB"
    assert single["image"]["size"] == [64, 64]
    assert single["score"] is None and single["candidates"] == [] and single["scores"] == []
    fdm = tiny_backbones("chameleon")
    expected = generate_images(fdm, [_prompt(fdm, _png(folder, "src0.png"), ACTIONS[0])], 1, seed=11)
    assert expected.image_ids[0, 0].tolist() == single["image_ids"]
    assert _same(_png(folder, "single.png"), expected.images[0][0])


def test_best_of_n_scores_are_the_idm_log_likelihoods_and_the_argmax_wins(fresh, tiny_backbones):
    report, folder = fresh
    best = report["best"]
    fdm, idm = tiny_backbones("chameleon"), tiny_backbones("liquid")
    source = _png(folder, "src0.png")
    candidates = [_png(folder, c["file"]) for c in best["candidates"]]
    # The four candidates are ONE generate_images call sharing the prompt (same seed, same RNG stream).
    expected = generate_images(fdm, [_prompt(fdm, source, ACTIONS[0])], 4, seed=12)
    assert all(_same(got, want) for got, want in zip(candidates, expected.images[0], strict=True))
    # Scores: log p(action | source, candidate) under the IDM, each row scored on its own here.
    independent = action_log_likelihoods(idm, [source] * 4, candidates, [ACTIONS[0]] * 4, batch_size=1)
    assert best["scores"] == pytest.approx([s.total for s in independent], abs=1e-3)
    winner = int(np.argmax(best["scores"]))
    assert best["score"] == max(best["scores"])
    assert _same(_png(folder, "best.png"), candidates[winner])


def test_a_list_of_images_is_one_batch(fresh, tiny_backbones):
    report, folder = fresh
    fdm, idm = tiny_backbones("chameleon"), tiny_backbones("liquid")
    sources = [_png(folder, "src0.png"), _png(folder, "src1.png")]
    expected = generate_images(fdm, [_prompt(fdm, s, a) for s, a in zip(sources, ACTIONS[:2])], 2, seed=13)
    assert len(report["batch"]) == 2
    for row, result in enumerate(report["batch"]):
        candidates = [_png(folder, c["file"]) for c in result["candidates"]]
        assert all(_same(got, want) for got, want in zip(candidates, expected.images[row], strict=True))
        independent = action_log_likelihoods(idm, [sources[row]] * 2, candidates, [ACTIONS[row]] * 2, batch_size=1)
        assert result["scores"] == pytest.approx([s.total for s in independent], abs=1e-3)
        assert _same(_png(folder, result["image"]["file"]), candidates[int(np.argmax(result["scores"]))])


def test_rollout_feeds_each_prediction_to_the_next_step(fresh, tiny_backbones):
    report, folder = fresh
    steps = report["rollout"]
    assert len(steps) == 3
    assert all(step["image"]["size"] == [64, 64] for step in steps)
    fdm = tiny_backbones("chameleon")
    previous = _png(folder, "src0.png")
    for index, (step, action) in enumerate(zip(steps, ACTIONS)):
        # Step i continues from step i - 1's own tokens, with seed + i.
        expected = generate_images(fdm, [_prompt(fdm, previous, action)], 1, seed=14 + index)
        assert expected.image_ids[0, 0].tolist() == step["image_ids"]
        assert _same(_png(folder, step["image"]["file"]), expected.images[0][0])
        previous = torch.tensor(step["image_ids"])
    assert len({tuple(step["image_ids"]) for step in steps}) == 3


def test_inverse_dynamics_action_and_score(fresh, tiny_backbones):
    report, folder = fresh
    said = report["idm"]
    assert said["keys"] == ["action", "score"]
    idm = tiny_backbones("liquid")
    source, target = _png(folder, "src0.png"), _png(folder, "tgt0.png")
    expected = generate_actions(idm, [(source, target)], max_new_tokens=6, do_sample=True, seed=5)[0]
    assert said["action"] == expected
    (own,) = action_log_likelihoods(idm, [source], [target], [expected])
    assert said["score"] == pytest.approx(own.total, abs=1e-3)
    (given,) = action_log_likelihoods(idm, [source], [target], [ACTIONS[0]])
    assert said["given"] == pytest.approx(given.total, abs=1e-3)
    assert said["given_mean"] == pytest.approx(given.mean, abs=1e-4)
    assert said["given"] < 0


@pytest.fixture(scope="module")
def pipes(tiny_backbones):
    from transformers import pipeline

    fdm = pipeline("forward-dynamics", model=tiny_backbones("chameleon"), device="cpu")
    idm = pipeline("inverse-dynamics", model=tiny_backbones("liquid"), device="cpu")
    return fdm, idm


def test_best_of_n_is_one_generate_call_and_one_scoring_forward(pipes, world_images, monkeypatch):
    fdm, idm = pipes
    calls = {"generate": [], "score": []}
    generate, forward = fdm.model.generate, idm.model.forward

    def counted_generate(*args, **kwargs):
        calls["generate"].append(kwargs["input_ids"].shape[0])
        calls["prompts_cached"] = kwargs[cache_argument(fdm.model)].get_seq_length()  # read before, once
        return generate(*args, **kwargs)

    def counted_forward(*args, **kwargs):
        calls["score"].append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(fdm.model, "generate", counted_generate)
    monkeypatch.setattr(idm.model, "forward", counted_forward)
    sources = [str(world_images / "src0.png"), str(world_images / "src1.png")]
    results = fdm(sources, ACTIONS[0], num_candidates=2, verifier=idm, seed=0)
    prompt_length = len(
        fdm.backbone.build_fdm_sequence(fdm.backbone.encode_images([Image.open(sources[0])])[0], ACTIONS[0]).input_ids
    )
    # 2 prompts x 2 candidates in one call, continuing from the cache of the prompts; 4 rows in one scoring forward
    assert calls == {"generate": [4], "prompts_cached": prompt_length - 1, "score": [4]}
    # Without return_candidates only the winner comes back, with its score.
    assert [sorted(r) for r in results] == [["candidates", "image", "score", "scores"]] * 2
    assert all(r["candidates"] == [] and r["scores"] == [] and isinstance(r["score"], float) for r in results)


@pytest.mark.parametrize("arch", ["chameleon", "liquid", "emu3"])
def test_reading_each_prompt_once_samples_what_repeating_it_samples(arch, tiny_backbones):
    backbone = tiny_backbones(arch)
    world = ShapesWorld(WorldConfig(image_size=backbone.config.image_size))
    triplets = [world.triplet("test", index) for index in range(3)]
    prompts = [backbone.build_fdm_sequence(t.source, t.action.text).input_ids for t in triplets]
    assert len({len(prompt) for prompt in prompts}) > 1  # left padding is part of it
    repeated = generate_images(backbone, prompts, 4, seed=3, decode=False, share_prefill=False)
    shared = generate_images(backbone, prompts, 4, seed=3, decode=False)
    assert torch.equal(repeated.image_ids, shared.image_ids) and torch.equal(repeated.sequences, shared.sequences)


def test_a_verifier_with_the_fdm_image_tokenizer_scores_the_sampled_ids(
    pipes, tiny_backbones, world_images, monkeypatch
):
    # same VQ model: no decode + re-encode of every candidate, and only the winners are decoded
    from transformers import pipeline

    fdm, _ = pipes
    verifier = pipeline("inverse-dynamics", model=tiny_backbones("chameleon"), device="cpu")
    assert verifier.backbone.image_fingerprint() == fdm.backbone.image_fingerprint()
    seen, decoded, encoded = {}, [], []
    score, decode, encode = verifier.score, fdm.backbone.decode_images, verifier.backbone.encode_images

    def spy_score(sources, candidates, actions):
        seen["candidates"] = candidates
        return score(sources, candidates, actions)

    def spy_decode(ids):
        decoded.append(len(ids))
        return decode(ids)

    monkeypatch.setattr(verifier, "score", spy_score)
    monkeypatch.setattr(fdm.backbone, "decode_images", spy_decode)
    monkeypatch.setattr(
        verifier.backbone, "encode_images", lambda images: encoded.append(len(images)) or encode(images)
    )
    sources = [Image.open(world_images / "src0.png"), Image.open(world_images / "src1.png")]
    results = fdm(sources, ACTIONS[0], num_candidates=3, verifier=verifier, seed=0, return_image_ids=True)
    assert decoded == [2] and max(encoded) == 2  # the two winners decoded, the two sources encoded, no candidate
    assert all(isinstance(c, torch.Tensor) for c in seen["candidates"]) and len(seen["candidates"]) == 6
    for row, result in enumerate(results):
        row_ids = torch.stack(seen["candidates"][row * 3 : (row + 1) * 3])
        expected = score([sources[row]] * 3, list(row_ids), [ACTIONS[0]] * 3)
        assert result["score"] == pytest.approx(max(expected), abs=1e-4)
        assert torch.equal(result["image_ids"], row_ids[expected.index(max(expected))])


@pytest.mark.parametrize("shared_vq", [True, False], ids=["shared-vq", "own-vq"])
def test_equal_candidates_are_scored_once_and_share_the_score(
    pipes, tiny_backbones, world_images, shared_vq, monkeypatch
):
    from transformers import pipeline

    fdm, own_vq = pipes
    verifier = pipeline("inverse-dynamics", model=tiny_backbones("chameleon"), device="cpu") if shared_vq else own_vq
    sources = [Image.open(world_images / "src0.png"), Image.open(world_images / "src1.png")]
    rows = []
    score = verifier.score

    def spy_score(sources, candidates, actions):
        rows.append(len(candidates))
        return score(sources, candidates, actions)

    monkeypatch.setattr(verifier, "score", spy_score)
    decoded, decode = [], fdm.backbone.decode_images
    monkeypatch.setattr(fdm.backbone, "decode_images", lambda ids: decoded.append(len(ids)) or decode(ids))
    # greedy: the 4 candidates of a prompt are one picture
    results = fdm(
        sources, ACTIONS[0], num_candidates=4, top_k=1, verifier=verifier, seed=0, return_candidates=True,
        return_image_ids=True,
    )  # fmt: skip
    assert rows == [2]  # one per prompt
    assert decoded == [2]  # and one picture decoded per prompt
    pictures = decode(torch.stack([result["image_ids"] for result in results]))
    for source, result, picture in zip(sources, results, pictures):
        assert len(result["candidates"]) == 4 and len(set(result["scores"])) == 1
        first, *copies = result["candidates"]  # equal pictures, each its own object
        assert first.tobytes() == picture.tobytes()
        assert all(c is not first and c.tobytes() == first.tobytes() for c in copies)
        # what the verifier reads of a candidate: its sampled ids (shared VQ) or its decoded picture (own VQ)
        candidate = result["image_ids"] if shared_vq else result["candidates"][0]
        expected = score(source, candidate, ACTIONS[0])
        assert result["score"] == pytest.approx(expected, abs=1e-4) and result["scores"][0] == result["score"]


def test_save_pretrained_writes_a_folder_the_pipeline_reloads(pipes, world_images, tmp_path):
    from transformers import pipeline

    fdm, _ = pipes
    fdm.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "vqgan" / "config.json").is_file()  # the image tokenizer travels with the LM
    reloaded = pipeline("forward-dynamics", model=str(tmp_path / "saved"), device="cpu")
    source = str(world_images / "src0.png")
    original = fdm(source, ACTIONS[1], seed=2, return_image_ids=True)["image_ids"]
    assert torch.equal(reloaded(source, ACTIONS[1], seed=2, return_image_ids=True)["image_ids"], original)


def test_bad_calls_fail_with_a_clear_error(pipes, world_images):
    fdm, idm = pipes
    source = str(world_images / "src0.png")
    with pytest.raises(ValueError, match="either action= .* or actions="):
        fdm(source, "a", actions=["b"])
    with pytest.raises(ValueError, match="without verifier"):
        fdm(source, "a", num_candidates=2)
    with pytest.raises(FileNotFoundError, match="image 0: .*missing.png"):
        fdm(str(world_images / "missing.png"), "a")
    corrupt = world_images / "corrupt.png"
    corrupt.write_text("not a picture")
    with pytest.raises(ValueError, match="image 0: .*corrupt.png: not an image PIL can read"):
        fdm(str(corrupt), "a")
    with pytest.raises(ValueError, match="2 actions for 1 images"):
        fdm([source], ["a", "b"])
    with pytest.raises(ValueError, match=r"action\[1\]: a blank action"):
        fdm([source, source], ["a", "  "])
    with pytest.raises(ValueError, match=r"actions\[1\]\[0\]: a blank action"):
        fdm(source, actions=["a", ""])
    with pytest.raises(TypeError, match="verifier must be"):
        fdm(source, "a", num_candidates=2, verifier=3)
    with pytest.raises(ValueError, match="num_candidates"):
        fdm(source, "a", num_candidates=0)
    # values that transformers would read as "off" without a word
    with pytest.raises(ValueError, match=r"top_k must be an integer >= 1 .* got 0"):
        fdm(source, "a", top_k=0)
    for top_p in (0.0, 1.5):
        with pytest.raises(ValueError, match=rf"top_p must be in \(0, 1\] .* got {top_p}"):
            fdm(source, "a", top_p=top_p)
    with pytest.raises(ValueError, match="differ in length"):
        idm.score(source, [source, source], ["a", "b", "c"])


def test_hostile_python_arguments_are_refused_by_name(pipes, world_images, model_dirs, tmp_path):
    fdm, idm = pipes
    source = str(world_images / "src0.png")
    with pytest.raises(TypeError, match="actions= is a rollout, a list"):  # not a rollout of "p", "u", "s", "h"
        fdm(source, actions="push")
    for seed, error in (("0", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError), (2**64, ValueError)):
        with pytest.raises(error, match="seed must be"):
            fdm(source, "a", seed=seed)
    with pytest.raises(ValueError, match="num_candidates must be an integer >= 1, got True"):
        fdm(source, "a", num_candidates=True, return_candidates=True)
    with pytest.raises(ValueError, match=r"action\[0\]: not valid UTF-8 text"):
        fdm(source, "a\udcff")
    with pytest.raises(ValueError, match="action 0: a blank action"):
        idm.score(source, source, " ")
    with pytest.raises(ValueError, match="temperature must be > 0 and finite"):
        idm(source, source, do_sample=True, temperature=float("inf"))
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1, got 1.5"):
        idm(source, source, max_new_tokens=1.5)
    # the model's context (1024 positions for the tiny presets) bounds prompts, scored rows and generation budgets
    with pytest.raises(ValueError, match=r"prompt 0 and the image to generate: \d+ tokens, longer than .* 1024"):
        fdm(source, "x" * 2000)
    with pytest.raises(ValueError, match=r"sequence 0 to score: \d+ tokens, longer than .* 1024"):
        idm.score(source, source, "x" * 2000)
    with pytest.raises(ValueError, match="the IDM prompt and max_new_tokens=5000"):
        idm(source, source, max_new_tokens=5000)
    with pytest.raises(ValueError, match=r"1000000000000 rows of \d+ tokens need about .* GiB of KV cache, more than"):
        fdm(source, "a", num_candidates=10**12, return_candidates=True)
    with pytest.raises(ValueError, match=f"verifier {tmp_path}/none: no such model folder"):
        fdm(source, "a", num_candidates=2, verifier=str(tmp_path / "none"))
    with pytest.raises(ValueError, match="verifier .*src0.png: is a file"):
        fdm(source, "a", num_candidates=2, verifier=source)


def test_observations_are_checked_before_the_model_reads_them(pipes, world_images, tmp_path):
    from wm_hub.inference.pipelines import load_observation

    fdm, idm = pipes
    with pytest.raises(ValueError, match=r"image 0: an empty picture \(0x0 pixels\)"):
        fdm(Image.new("RGB", (0, 0)), "a")
    with pytest.raises(ValueError, match="image 0: a floating-point picture"):
        fdm(Image.new("F", (8, 8)), "a")
    with pytest.raises(ValueError, match="image 0: data:image/png;base64,AAAA: no picture from this URL"):
        fdm("data:image/png;base64,AAAA", "a")
    # ids given instead of pictures must be this model's image codes, as integers
    codes = idm.backbone.image_token_ids
    with pytest.raises(ValueError, match=f"observation 0: id {int(codes[0]) - 1} at position 0 is no image code"):
        idm.score(torch.full((64,), int(codes[0]) - 1), codes[:64], "push")
    with pytest.raises(ValueError, match="observation 1: LM image ids are integers, got a torch.float32 tensor"):
        idm.score(codes[:64], torch.rand(64), "push")
    # a 16-bit picture is scaled to 8 bits, not clipped white by convert("RGB")
    ramp = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    loaded = np.asarray(load_observation(tmp_path / "ramp16.png"), dtype=np.float64)
    assert loaded.shape == (64, 64, 3)
    np.testing.assert_allclose(loaded[..., 0], np.round(ramp.astype(np.float64) * 255 / 65535), atol=1)
    pixels = idm.backbone.preprocess([Image.open(tmp_path / "ramp16.png")])
    assert -0.2 < float(pixels.mean()) < 0.2  # a ramp over the whole range, not a white picture (mean ~1)


def test_a_bare_transformers_model_is_refused(tiny_backbones):
    from transformers import pipeline

    with pytest.raises(TypeError, match="wm_hub Backbone"):
        pipeline("forward-dynamics", model=tiny_backbones("chameleon").model, device="cpu")


def test_a_broken_checkpoint_never_falls_back_to_the_stock_chameleon(model_dirs, tmp_path):
    from transformers import pipeline

    from wm_hub.inference.pipelines import WorldModelLoadError

    broken = tmp_path / "no-vqgan"
    shutil.copytree(model_dirs["fdm"], broken, ignore=shutil.ignore_patterns("vqgan"))
    # config.architectures names ChameleonForConditionalGeneration, which would load without the VQGAN.
    with pytest.raises(WorldModelLoadError, match="No VQGAN"):
        pipeline("forward-dynamics", model=str(broken), device="cpu")


def test_cli_generate_and_rollout(model_dirs, world_images, tmp_path, capsys):
    source = str(world_images / "src0.png")
    out = tmp_path / "pred" / "next.png"
    args = ["--fdm", str(model_dirs["fdm"]), "--image", source, "--seed", "3", "--device", "cpu"]
    assert main(["generate", *args, "--action", ACTIONS[0], "--idm", str(model_dirs["idm"]), "--num-candidates", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_candidates"] == 2 and isinstance(summary["score"], float)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (64, 64)
    assert sorted(p.name for p in out.parent.iterdir()) == ["next.png"]  # no temporary file left

    folder = tmp_path / "rollout"
    assert main(["rollout", *args, "--actions", *ACTIONS[:2], "--out", str(folder)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in folder.iterdir()) == ["rollout.json", "step_01.png", "step_02.png"]
    steps = json.loads((folder / "rollout.json").read_text())["steps"]
    assert [s["action"] for s in steps] == ACTIONS[:2] and [s["image"] for s in steps] == [
        "step_01.png",
        "step_02.png",
    ]
    assert main(["rollout", *args, "--actions", ACTIONS[0], "--out", str(folder)]) == 0  # a shorter rerun
    capsys.readouterr()
    assert sorted(p.name for p in folder.iterdir()) == ["rollout.json", "step_01.png"]  # no stale step_02
    with pytest.raises(SystemExit, match="blank action"):
        main(["rollout", *args, "--actions", ACTIONS[0], " ", "--out", str(folder)])
    with pytest.raises(SystemExit, match="--action is blank"):
        main(["generate", *args, "--action", "", "--out", str(out)])

    with pytest.raises(SystemExit, match="--image .*missing.png: no such file"):
        main(["generate", *args[:2], "--image", str(world_images / "missing.png"), "--action", "a", "--out", str(out)])
    with pytest.raises(SystemExit, match="--fdm .*nowhere: no such model folder"):
        main(["generate", "--fdm", str(tmp_path / "nowhere"), "--image", source, "--action", "a", "--out", str(out)])
    with pytest.raises(SystemExit, match="needs --idm"):
        main(["generate", *args, "--action", "a", "--num-candidates", "4", "--out", str(out)])
    with pytest.raises(SystemExit, match="--top-k must be an integer >= 1"):
        main(["generate", *args, "--action", "a", "--top-k", "0", "--out", str(out)])
    with pytest.raises(SystemExit, match=r"--top-p must be in \(0, 1\]"):
        main(["rollout", *args, "--actions", "a", "--top-p", "0", "--out", str(folder)])
    with pytest.raises(SystemExit, match="--temperature must be > 0 and finite .*got inf"):  # was a traceback
        main(["generate", *args, "--action", "a", "--temperature", "inf", "--out", str(out)])
    with pytest.raises(SystemExit, match=r"--action '\\udcff' is not valid UTF-8 text"):  # a byte 0xff on the shell
        main(["generate", *args, "--action", "\udcff", "--out", str(out)])
    kept = (folder / "step_01.png").read_bytes()
    step = ["--image", str(folder / "step_01.png")]  # a rollout from a step of the folder it would write
    with pytest.raises(SystemExit, match=r"--out .*rollout would overwrite or remove --image .*step_01.png"):
        main(["rollout", *args[:2], *step, "--actions", "a", "--out", str(folder)])
    with pytest.raises(SystemExit, match=r"--out .*step_01.png would overwrite or remove --image"):
        main(["generate", *args[:2], *step, "--action", "a", "--out", str(folder / "step_01.png")])
    assert (folder / "step_01.png").read_bytes() == kept
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 megapixels in a few kilobytes
    with pytest.raises(SystemExit, match="--image .*bomb.png: cannot be read .*decompression bomb"):
        main(["generate", *args[:2], "--image", str(bomb), "--action", "a", "--out", str(out)])


def test_cli_refuses_a_model_fine_tuned_for_the_other_task(model_dirs, world_images, tmp_path):
    idm_like = tmp_path / "trained-idm"
    shutil.copytree(model_dirs["fdm"], idm_like)
    (idm_like / "training_run.json").write_text(json.dumps({"task": "idm"}))
    fdm_like = tmp_path / "trained-fdm"
    shutil.copytree(model_dirs["idm"], fdm_like)
    (fdm_like / "training_run.json").write_text(json.dumps({"task": "fdm"}))
    out = tmp_path / "next.png"
    common = ["--image", str(world_images / "src0.png"), "--action", ACTIONS[0], "--out", str(out)]
    with pytest.raises(SystemExit, match=r"--fdm .*trained-idm was fine-tuned as an IDM .*needs an FDM"):
        main(["generate", "--fdm", str(idm_like), *common])
    with pytest.raises(SystemExit, match=r"--idm .*trained-fdm was fine-tuned as an FDM .*needs an IDM"):
        main(["generate", "--fdm", str(model_dirs["fdm"]), "--idm", str(fdm_like), "--num-candidates", "2", *common])
    assert not out.exists()


@pytest.mark.slow
def test_gpu_verification_benchmark_runs_in_tiny_mode(tmp_path):
    out = tmp_path / "verification_tiny.json"
    command = [sys.executable, str(ROOT / "benchmarks/gpu/verification.py"), "--tiny", "--candidates", "2"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    completed = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["shape"]["image_seq_len"] == 64 and result["settings"]["cache"] == "static"
    timings = result["results"]
    for name in ("one_sample_s", "best_of_2_s", "generation_2_s", "vq_decode_2_s", "scoring_2_s"):
        assert timings[name] > 0, name
    assert result["ratios"]["best_of_2_over_one_sample"] == pytest.approx(
        timings["best_of_2_s"] / timings["one_sample_s"]
    )


def test_a_checkpoint_fine_tuned_for_the_other_task_is_refused(model_dirs, tmp_path):
    # the CLI refused it already; from Python, an IDM loaded as an FDM sampled pictures without complaint
    from transformers import pipeline

    idm = tmp_path / "trained-idm"
    shutil.copytree(model_dirs["fdm"], idm)
    (idm / "training_run.json").write_text(json.dumps({"task": "idm"}))
    with pytest.raises(ValueError, match="ForwardDynamicsPipeline needs an FDM .* fine-tuned as an IDM"):
        pipeline("forward-dynamics", model=str(idm), device="cpu")
    verifier = pipeline("inverse-dynamics", model=str(idm), device="cpu")
    assert verifier.backbone.trained_task == "idm"
    fdm = pipeline("forward-dynamics", model=str(model_dirs["fdm"]), device="cpu")  # a base model: no record
    assert fdm.backbone.trained_task is None
    (idm / "training_run.json").write_text(json.dumps({"task": "fdm"}))
    with pytest.raises(ValueError, match="InverseDynamicsPipeline needs an IDM .* fine-tuned as an FDM"):
        fdm(Image.new("RGB", (32, 32)), "move", num_candidates=2, verifier=str(idm))


@pytest.mark.parametrize(
    "first",
    ["wm_hub", "wm_hub.inference.pipelines", "wm_hub.inference.forward_dynamics", "wm_hub.inference.inverse_dynamics"],
)
def test_the_tasks_register_whichever_module_is_imported_first(first):
    code = (
        f"import {first}\n"
        "from transformers.pipelines import PIPELINE_REGISTRY\n"
        "from wm_hub.inference.forward_dynamics import ForwardDynamicsPipeline\n"
        "from wm_hub.inference.inverse_dynamics import InverseDynamicsPipeline\n"
        "tasks = PIPELINE_REGISTRY.supported_tasks\n"
        "print(tasks['forward-dynamics']['impl'] is ForwardDynamicsPipeline,"
        " tasks['inverse-dynamics']['impl'] is InverseDynamicsPipeline)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True"]
