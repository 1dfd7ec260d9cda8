"""wm-hub eval aurora: the copy baseline's L1 on the real AURORA-BENCH sample, prediction folders, CLIP/DINO with
tiny local models, InstructPix2Pix with a tiny random pipeline, and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from openai_server import Reply, instruction_of, openai_server_fixture  # noqa: F401
from PIL import Image
from shared_data import require

from wm_hub.cli import main

BENCH_MINI = Path(__file__).resolve().parents[2] / "shared" / "data" / "aurora-bench-mini"
PAPER_SUBSETS = ("magicbrush", "ag", "something", "whatsup", "kubric")
MISSING_ROW = "something/17"


def _numpy_l1(prediction_path: Path, target_path: Path) -> float:
    """The issue's L1, computed independently: RGB in [0, 1], target resized bicubic to the prediction's size."""
    with Image.open(prediction_path) as prediction, Image.open(target_path) as target:
        size = prediction.size
        pred = np.asarray(prediction.convert("RGB"), dtype=np.float32) / 255
        tgt = np.asarray(target.convert("RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255
    return float(np.mean(np.abs(pred - tgt)))


def _run(args: list[str]) -> dict:
    assert main(["eval", "aurora", *args]) == 0
    return json.loads(Path(args[args.index("--out") + 1]).read_text())


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    """The acceptance command on the real sample: copy predictions, L1, skip the row with a missing image."""
    require(BENCH_MINI)
    out = tmp_path_factory.mktemp("copy") / "R.json"
    args = ["--data-dir", str(BENCH_MINI), "--predictions", "copy", "--metrics", "l1", "--out", str(out)]
    return _run([*args, "--skip-missing"]), out


def test_copy_l1_equals_numpy_on_the_real_sample(copy_run):
    results, out = copy_run
    rows = json.loads((BENCH_MINI / "test.json").read_text())
    expected: dict[str, list[float]] = {name: [] for name in PAPER_SUBSETS}
    for index, row in enumerate(rows):
        if row["task"] in expected and f"{row['task']}/{index}" != MISSING_ROW:
            expected[row["task"]].append(_numpy_l1(BENCH_MINI / row["input"], BENCH_MINI / row["output"]))

    assert list(results["subsets"]) == list(PAPER_SUBSETS)
    for name, values in expected.items():
        summary = results["subsets"][name]
        assert summary["n"] == len(values) == (5 if name == "something" else 6)
        assert summary["l1"] == pytest.approx(np.mean(values), abs=1e-6)
        assert 0 < summary["l1"] < 0.2
    assert results["subsets"]["something"]["skipped"] == [MISSING_ROW]
    assert all(results["subsets"][name]["skipped"] == [] for name in PAPER_SUBSETS if name != "something")
    assert results["overall"]["n"] == 29 and results["overall"]["skipped"] == [MISSING_ROW]
    assert results["overall"]["l1"] == pytest.approx(np.mean([np.mean(v) for v in expected.values()]), abs=1e-6)
    assert any("214831/last.jpg" in line for line in results["config"]["skipped_files"])

    per_row = [json.loads(line) for line in out.with_name("R.rows.jsonl").read_text().splitlines()]
    assert len(per_row) == 29 and MISSING_ROW not in {record["id"] for record in per_row}
    ag = [record["l1"] for record in per_row if record["subset"] == "ag"]
    assert ag == pytest.approx(expected["ag"], abs=1e-6)


def test_missing_image_without_skip_names_the_row(tmp_path):
    require(BENCH_MINI)
    out = tmp_path / "R.json"
    with pytest.raises(SystemExit) as error:
        main(
            ["eval", "aurora", "--data-dir", str(BENCH_MINI), "--subsets", "something", "--predictions", "copy"]
            + ["--out", str(out)]
        )
    assert "something/17" in str(error.value) and "214831/last.jpg" in str(error.value)
    assert not out.exists()


def test_subset_without_targets_is_refused(tmp_path):
    require(BENCH_MINI)
    with pytest.raises(SystemExit, match="clevr"):
        main(
            ["eval", "aurora", "--data-dir", str(BENCH_MINI), "--subsets", "ag,clevr", "--predictions", "copy"]
            + ["--out", str(tmp_path / "R.json")]
        )


@pytest.mark.parametrize(
    ("option", "values", "line"),
    [("--subsets", ["ag,kubric", "ag"], "subsets: ag given more than once"),
     ("--metrics", ["l1", "l1,l2"], "metrics: l1 given more than once")],
)  # fmt: skip
def test_a_subset_or_metric_given_twice_is_refused(tmp_path, capsys, option, values, line):
    argv = ["eval", "aurora", "--data-dir", str(tmp_path), "--predictions", "copy", "--out", str(tmp_path / "R.json")]
    with pytest.raises(SystemExit) as error:
        main([*argv, option, *values])
    assert error.value.code == 2 and capsys.readouterr().err.startswith(f"error: {line}")
    assert list(tmp_path.iterdir()) == []


# A small AURORA checkout: 2 ag rows and 2 whatsup rows (whatsup has captions), solid-colour images of mixed sizes.
COLOURS = [
    ((200, 30, 30), (180, 60, 30)),
    ((20, 200, 40), (20, 100, 240)),
    ((0, 0, 0), (255, 255, 255)),
    ((90,) * 3, (91,) * 3),
]


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("AURORA")
    rows = []
    for index, (source, target) in enumerate(COLOURS):
        task = "ag" if index < 2 else "whatsup"
        row = {"instruction": f"make it {index}", "task": task}
        for field, colour, size in (("input", source, (20, 16)), ("output", target, (24, 12))):
            path = f"data/{task}/images/{index}_{field}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", size, colour).save(root / path)
            row[field] = path
        if task == "whatsup":
            row["caption"] = f"a caption {index}"
        rows.append(row)
    (root / "test.json").write_text(json.dumps(rows))
    return root


def _small_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(root), "--subsets", "ag,whatsup", "--out", str(out), *extra]


def test_prediction_folder_missing_file_names_the_row(small_root, tmp_path):
    folder = tmp_path / "preds"
    (folder / "ag").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "ag" / "0.png")
    with pytest.raises(SystemExit) as error:
        main(["eval", "aurora", *_small_args(small_root, tmp_path / "R.json", "--predictions", str(folder))])
    message = str(error.value)
    assert "row ag/1" in message and "row whatsup/2" in message and "row whatsup/3" in message
    assert "ag/0" not in message.replace("ag/0.png", "")
    (folder / "ag" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n damaged")  # a PNG signature, then nothing usable
    with pytest.raises(SystemExit) as error:
        main(["eval", "aurora", *_small_args(small_root, tmp_path / "R.json", "--predictions", str(folder))])
    message = str(error.value)
    assert f"row ag/1: {folder / 'ag' / '1.png'}: " in message
    assert "Traceback" not in message and not (tmp_path / "R.json").exists()
    # --skip-missing scores the rows that have a prediction and names the others in the results
    results = _run(_small_args(small_root, tmp_path / "R.json", "--predictions", str(folder), "--skip-missing"))
    assert results["subsets"]["ag"]["n"] == 1 and results["subsets"]["whatsup"]["n"] == 0
    assert results["overall"]["skipped"] == ["ag/1", "whatsup/2", "whatsup/3"]
    assert any(line.startswith("prediction of row ag/1: ") for line in results["config"]["skipped_files"])
    (folder / "ag" / "0.png").unlink()  # no prediction left: nothing to score is an error, skipping or not
    with pytest.raises(SystemExit, match="4 of 4 row"):
        main(
            [
                "eval",
                "aurora",
                *_small_args(small_root, tmp_path / "R2.json", "--predictions", str(folder), "--skip-missing"),
            ]
        )


def test_outputs_that_would_replace_an_input_are_refused_before_any_work(small_root, tiny_model_dirs, tmp_path):
    folder = tmp_path / "preds"
    (folder / "ag").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "ag" / "0.png")
    before = (small_root / "test.json").read_bytes()
    cases = [
        (["--predictions", "copy"], small_root / "test.json", "--out .*test.json would overwrite --data-dir's"),
        (["--predictions", str(folder)], folder / "ag" / "0.png", r"--out .*0.png would overwrite --predictions"),
        (["--predictions", "copy", "--report", str(tmp_path / "r.json")], tmp_path / "r.json", "--report .* is --out"),
    ]
    for extra, out, message in cases:
        with pytest.raises(SystemExit, match=message):
            main(["eval", "aurora", *_small_args(small_root, out, *extra)])
    assert (small_root / "test.json").read_bytes() == before and not (tmp_path / "r.json").exists()
    model = ["--predictions", str(tiny_model_dirs("chameleon"))]
    for extra, message in ((["--top-k", "0"], "--top-k must be an integer >= 1"), (["--dtype", "bogus"], "bogus")):
        with pytest.raises(SystemExit, match=message):  # refused before the predictions folder records the run
            main(["eval", "aurora", *_small_args(small_root, tmp_path / "m" / "r.json", *model, *extra)])
    assert not (tmp_path / "m").exists()
    foreign = ["--predictions-dir", str(folder)]  # another run's or anyone's pictures, without a manifest
    with pytest.raises(SystemExit, match=r"preds holds files but no manifest.json: not predictions this command"):
        main(["eval", "aurora", *_small_args(small_root, tmp_path / "m" / "r.json", *model, *foreign)])
    assert sorted(path.name for path in folder.iterdir()) == ["ag"]


def test_prediction_folder_l1(small_root, tmp_path):
    folder = tmp_path / "preds"
    predicted = [(0, 0, 0), (255, 255, 255), (0, 0, 0), (90, 90, 90)]
    for index, colour in enumerate(predicted):
        subset = "ag" if index < 2 else "whatsup"
        (folder / subset).mkdir(parents=True, exist_ok=True)
        suffix = ".jpg" if index == 3 else ".png"
        Image.new("RGB", (10, 10), colour).save(folder / subset / f"{index}{suffix}")
    results = _run(_small_args(small_root, tmp_path / "R.json", "--predictions", str(folder)))
    # Solid colours stay solid through the bicubic resize: L1 is the mean channel difference.
    l1 = [np.abs(np.subtract(predicted[i], COLOURS[i][1])).mean() / 255 for i in range(4)]
    assert results["subsets"]["ag"]["l1"] == pytest.approx((l1[0] + l1[1]) / 2, abs=1e-6)
    assert results["subsets"]["whatsup"]["l1"] == pytest.approx((l1[2] + l1[3]) / 2, abs=2e-3)  # JPEG
    assert results["config"]["kind"] == "dir" and results["config"]["label"] == "preds"


@pytest.fixture(scope="module")
def tiny_embedders(tmp_path_factory):
    """A tiny random CLIP (byte tokenizer, CLIP image processor) and a tiny random ViT (DINO), saved locally."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, ViTConfig, ViTImageProcessor, ViTModel

    from wm_hub.models.tiny import build_byte_tokenizer

    root = tmp_path_factory.mktemp("embedders")
    torch.manual_seed(0)
    text = dict(vocab_size=260, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    text.update(max_position_embeddings=32, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32)
    CLIPModel(
        CLIPConfig(text_config=text, vision_config={**vision, "patch_size": 8}, projection_dim=8)
    ).save_pretrained(root / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        root / "clip"
    )
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokenizer = build_byte_tokenizer(specials, specials, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>")
    tokenizer.save_pretrained(root / "clip")
    ViTModel(ViTConfig(**vision, patch_size=8)).save_pretrained(root / "dino")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "dino")
    return root / "clip", root / "dino"


def test_clip_and_dino_equal_direct_transformers(tiny_embedders):
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel, ViTModel

    from wm_hub.evaluation.image_metrics import ClipScorer, DinoScorer, EmbeddingConfig

    clip_dir, dino_dir = tiny_embedders
    images = [Image.new("RGB", (40, 30), (200, 20, 20)), Image.new("RGBA", (30, 50), (20, 200, 90, 40))]
    images.append(Image.effect_noise((36, 36), 60).convert("RGB"))
    texts = ["a red block", "move the green cup to the left", "noise"]
    clip = ClipScorer(EmbeddingConfig(str(clip_dir), device="cpu", batch_size=2))
    dino = DinoScorer(EmbeddingConfig(str(dino_dir), device="cpu", batch_size=2))

    assert clip.image_similarity(images, images) == pytest.approx([1.0] * 3, abs=1e-5)
    assert dino.image_similarity(images, images) == pytest.approx([1.0] * 3, abs=1e-5)

    shifted = images[1:] + images[:1]
    model = CLIPModel.from_pretrained(clip_dir).eval()
    processor = AutoImageProcessor.from_pretrained(clip_dir)
    tokens = AutoTokenizer.from_pretrained(clip_dir)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        pixels = processor(images=[im.convert("RGB") for im in images + shifted], return_tensors="pt").pixel_values
        output = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pixels)
    embeds = output.image_embeds
    direct_i = torch.cosine_similarity(embeds[:3], embeds[3:]).tolist()
    direct_t = torch.cosine_similarity(embeds[:3], output.text_embeds).tolist()
    assert clip.image_similarity(images, shifted) == pytest.approx(direct_i, abs=1e-5)
    assert clip.text_similarity(images, texts) == pytest.approx(direct_t, abs=1e-5)
    assert max(abs(value) for value in direct_t) < 0.999

    vit = ViTModel.from_pretrained(dino_dir).eval()
    with torch.no_grad():
        pixels = AutoImageProcessor.from_pretrained(dino_dir)(images=[im.convert("RGB") for im in images + shifted])
        cls = vit(pixel_values=torch.as_tensor(np.stack(pixels["pixel_values"]))).last_hidden_state[:, 0]
    assert dino.image_similarity(images, shifted) == pytest.approx(torch.cosine_similarity(cls[:3], cls[3:]).tolist())


def test_runner_embedding_metrics_use_captions(small_root, tiny_embedders, tmp_path):
    clip_dir, dino_dir = tiny_embedders
    out = tmp_path / "R.json"
    extra = ["--predictions", "copy", "--metrics", "clip_i,clip_t,dino", "--clip-model", str(clip_dir)]
    results = _run(_small_args(small_root, out, *extra, "--dino-model", str(dino_dir), "--device", "cpu"))
    records = {r["id"]: r for r in map(json.loads, out.with_name("R.rows.jsonl").read_text().splitlines())}
    assert records["ag/0"]["clip_t_text"] == "make it 0" and records["whatsup/2"]["clip_t_text"] == "a caption 2"
    for name, ids in (("ag", ("ag/0", "ag/1")), ("whatsup", ("whatsup/2", "whatsup/3"))):
        for metric in ("clip_i", "clip_t", "dino"):
            assert -1 <= results["subsets"][name][metric] <= 1
            assert results["subsets"][name][metric] == pytest.approx(np.mean([records[i][metric] for i in ids]))
    assert results["config"]["clip_model"] == str(clip_dir) and "judge" not in results["config"]


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory) -> Path:
    """A tiny random BLIP captioning model (byte tokenizer, BLIP image processor) saved locally."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil

    from wm_hub.models.tiny import build_byte_tokenizer

    root = tmp_path_factory.mktemp("blip")
    torch.manual_seed(0)
    text = dict(vocab_size=260, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    text.update(max_position_embeddings=64, bos_token_id=0, eos_token_id=2, pad_token_id=1, sep_token_id=2)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32)
    config = BlipConfig(text_config={**text, "encoder_hidden_size": 16}, vision_config={**vision, "patch_size": 8})
    BlipForConditionalGeneration(config).save_pretrained(root)
    BlipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(root)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    build_byte_tokenizer(specials, specials, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>").save_pretrained(root)
    return root


def test_clip_t_against_blip_captions_of_the_targets_cached(
    small_root, tiny_embedders, tiny_blip, tmp_path, monkeypatch
):
    from transformers import AutoImageProcessor, AutoTokenizer, BlipForConditionalGeneration

    from wm_hub.evaluation import aurora
    from wm_hub.evaluation.image_metrics import BlipCaptioner, EmbeddingConfig

    target = Image.effect_noise((36, 36), 60).convert("RGB")
    model = BlipForConditionalGeneration.from_pretrained(tiny_blip).eval()
    pixels = AutoImageProcessor.from_pretrained(tiny_blip)(images=[target], return_tensors="pt")["pixel_values"]
    direct = AutoTokenizer.from_pretrained(tiny_blip).batch_decode(
        model.generate(pixel_values=pixels, max_new_tokens=30, do_sample=False), skip_special_tokens=True
    )
    captioner = BlipCaptioner(EmbeddingConfig(str(tiny_blip), device="cpu"))
    assert captioner.captions([target]) == [text.strip() for text in direct]

    clip_dir, _ = tiny_embedders
    out = tmp_path / "R.json"
    extra = ["--predictions", "copy", "--metrics", "clip_t", "--clip-model", str(clip_dir), "--device", "cpu"]
    args = _small_args(small_root, out, *extra, "--clip-t-text", "blip", "--caption-model", str(tiny_blip))
    results = _run(args)
    records = {r["id"]: r for r in map(json.loads, out.with_name("R.rows.jsonl").read_text().splitlines())}
    bench = aurora.load_bench(small_root, ["ag", "whatsup"])
    targets = [bench.images(row)[1] for row in bench.rows]
    assert [records[row.id]["clip_t_text"] for row in bench.rows] == captioner.captions(targets)
    assert results["config"]["caption_model"] == str(tiny_blip) and results["config"]["clip_t_text"] == "blip"
    assert len(json.loads((tmp_path / "blip_captions.json").read_text())) == len(bench.rows)

    monkeypatch.setattr(aurora, "BlipCaptioner", lambda *a, **k: pytest.fail("captioned again"))
    assert _run(args)["subsets"]["ag"]["clip_t"] == results["subsets"]["ag"]["clip_t"]  # from the cache


@pytest.fixture(scope="module")
def tiny_ip2p(tmp_path_factory) -> Path:
    """A tiny random InstructPix2Pix pipeline (UNet with 8 input channels, VAE, CLIP text encoder) saved locally."""
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from wm_hub.models.tiny import build_byte_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=8,  # noisy latents + source latents
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
        attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    text = CLIPTextConfig(
        vocab_size=260,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokenizer = build_byte_tokenizer(specials, specials, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>")
    tokenizer.model_max_length = 77
    pipeline = StableDiffusionInstructPix2PixPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(text),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out = tmp_path_factory.mktemp("ip2p")
    pipeline.save_pretrained(out)
    return out


def test_ip2p_writes_predictions_and_resumes(small_root, tiny_ip2p, tmp_path):
    out = tmp_path / "run" / "R.json"
    ip2p = ["--predictions", "ip2p", "--ip2p-model", str(tiny_ip2p), "--ip2p-steps", "2", "--ip2p-resolution", "16"]
    args = _small_args(small_root, out, *ip2p, "--batch-size", "3", "--device", "cpu")
    results = _run(args)
    predictions = {row_id: out.parent / "predictions" / f"{row_id}.png" for row_id in ("ag/0", "ag/1", "whatsup/2")}
    for path in predictions.values():
        with Image.open(path) as image:
            assert image.size == (16, 16) and image.mode == "RGB"
    records = {r["id"]: r for r in map(json.loads, out.with_name("R.rows.jsonl").read_text().splitlines())}
    assert records["ag/0"]["l1"] == pytest.approx(
        _numpy_l1(predictions["ag/0"], small_root / "data/ag/images/0_output.png")
    )
    assert results["config"]["ip2p"]["num_inference_steps"] == 2

    # A rerun reuses every saved prediction (even a replaced one) instead of sampling again.
    Image.new("RGB", (16, 16), COLOURS[0][1]).save(predictions["ag/0"])
    stamps = {row_id: path.stat().st_mtime_ns for row_id, path in predictions.items()}
    rerun = _run(args)
    assert {row_id: path.stat().st_mtime_ns for row_id, path in predictions.items()} == stamps
    assert rerun["subsets"]["ag"]["l1"] == pytest.approx(records["ag/1"]["l1"] / 2, abs=1e-6)

    # Other settings must not silently reuse (or mix with) these predictions.
    with pytest.raises(SystemExit, match="predictions of another run"):
        main(["eval", "aurora", *_small_args(small_root, out, *ip2p[:-1], "8", "--device", "cpu")])


def _results(path: Path, label: str, values: dict[str, dict[str, float]], k: int | None = None) -> Path:
    config = {"label": label, "kind": "model" if k else "copy"}
    if k:
        config["model"] = {"num_candidates": k}
    subsets = {name: {"n": 5, "skipped": [], **metrics} for name, metrics in values.items()}
    overall = {m: float(np.mean([v[m] for v in values.values()])) for m in next(iter(values.values()))}
    path.write_text(json.dumps({"subsets": subsets, "overall": {"n": 10, "skipped": [], **overall}, "config": config}))
    return path


def test_every_judge_table_counts_the_replies_not_parsed(tmp_path):
    from wm_hub.evaluation.aurora import AuroraEvalConfig
    from wm_hub.evaluation.judge import JudgeConfig
    from wm_hub.evaluation.reports import judge_details_table, load_results, metrics_table, score_table

    assert JudgeConfig().model == AuroraEvalConfig.judge_model == "gpt-4o-2024-11-20"  # the paper's snapshot
    values = {"ag": {"judge": 4.0, "judge_es": 5.0, "judge_me": 4.5, "judge_unparsable": 2}}
    first = _results(tmp_path / "a.json", "A", values)
    values = {"ag": {"judge": 6.0, "judge_es": 7.0, "judge_me": 6.5, "judge_unparsable": 0}}
    runs = load_results([first, _results(tmp_path / "b.json", "B", values, 1)])
    assert score_table(runs, "judge").splitlines()[-1] == "| GPT-4o replies not parsed (excluded) | 2 | 0 |"
    transposed = score_table(runs, "judge", models_as_rows=True).splitlines()
    assert transposed[0].endswith("| GPT-4o replies not parsed (excluded) |") and transposed[2].endswith("| 2 |")
    assert metrics_table(runs).splitlines()[-1] == "| All | GPT-4o replies not parsed (excluded) | 2 | 0 |"
    assert judge_details_table(runs).splitlines()[-1] == "| GPT-4o replies not parsed (excluded) | 2 |  | 0 |  |"
    assert "not parsed" not in score_table(runs, "l1")  # a metric of its own, not the judge's


def test_repeated_runs_are_averaged_with_their_std_and_the_judge_scores_plotted(tmp_path):
    from wm_hub.evaluation.reports import average_repeats, load_results, score_table

    paths = []
    for seed, (score, es) in enumerate(((4.0, 5.0), (5.0, 6.0), (6.0, 7.0))):  # three seeds of one model, K=2
        values = {"ag": {"judge": score, "judge_es": es, "judge_me": score, "l1": 0.1 * (seed + 1)}}
        paths.append(_results(tmp_path / f"seed{seed}.json", "C-FDM", values, 2))
        rows = [
            {"id": f"ag/{i}", "judge": {"parsed": True, "editing_success": es, "minimal_editing": i}} for i in range(3)
        ]
        (tmp_path / f"seed{seed}.rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    copy = _results(
        tmp_path / "copy.json", "copy", {"ag": {"judge": 0.0, "judge_es": 0.0, "judge_me": 10.0, "l1": 0.0}}
    )
    [averaged, baseline] = average_repeats(load_results([*paths, copy]))
    assert averaged.repeats == 3 and averaged.value("ag", "judge") == 5.0 and averaged.std("ag", "judge") == 1.0
    assert baseline.repeats == 1 and baseline.std("ag", "judge") is None
    assert "| AG | 0.00 | **5.00** ± 1.00 |" in score_table([baseline, averaged], "judge")

    out = tmp_path / "report"
    assert main(["eval", "report", *map(str, paths), str(copy), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| AG | **5.00** ± 1.00 | 0.00 |" in report and "mean ± std of 3 runs" in report
    with Image.open(out / "judge_scores.png") as image:  # paper Figure 11, from the rows files
        assert image.width > 300

    other = json.loads(paths[2].read_text())
    other["config"]["geometry"] = "stretch"  # not a repeat of the others: averaging it would mean nothing
    paths[2].write_text(json.dumps(other))
    with pytest.raises(ValueError, match=r"runs named 'C-FDM \(K=2\)' differ in \['geometry'\]"):
        average_repeats(load_results(paths))


def test_report_tables_and_plots(tmp_path):
    from wm_hub.evaluation.reports import load_results, metrics_table, score_table

    copy = _results(
        tmp_path / "copy.json", "copy", {"ag": {"judge": 0.0, "l1": 0.07}, "kubric": {"judge": 0.0, "l1": 0.01}}
    )
    runs = [copy]
    for k, score in ((1, 2.0), (2, 3.0), (4, 4.5)):
        values = {"ag": {"judge": score, "l1": 0.2}, "kubric": {"judge": score + 1, "l1": 0.05}}
        runs.append(_results(tmp_path / f"cft-{k}.json", "C-FT", values, k))

    table = score_table(load_results(runs), "judge")
    lines = table.splitlines()
    assert lines[0] == "| Dataset (GPT-4o) | copy | C-FT | C-FT (K=2) | C-FT (K=4) |"
    assert lines[2] == "| AG | 0.00 | 2.00 | 3.00 | **4.50** |"
    assert lines[-1] == "| AURORA-BENCH Avg. | 0.00 | 2.50 | 3.50 | **5.00** |"
    transposed = score_table(load_results(runs), "judge", models_as_rows=True).splitlines()
    assert transposed[0] == "| Model (GPT-4o) | AG | Kubric | AURORA-BENCH Avg. |"
    assert transposed[2] == "| copy | 0.00 | 0.00 | 0.00 |"
    table6 = metrics_table(load_results(runs)).splitlines()
    assert "| AG | L1 | **0.070** | 0.200 | 0.200 | 0.200 |" in table6  # lower L1 is better
    assert table6[-1] == "| All | GPT-4o | 0.00 | 2.50 | 3.50 | **5.00** |"

    out = tmp_path / "report"
    assert main(["eval", "report", *map(str, runs), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "paper Table 2" in report and "paper Table 6" in report and "| AG | 0.00 | 2.00 |" in report
    for name in ("judge_subsets.png", "judge_vs_k.png", "l1_subsets.png", "l1_vs_k.png"):
        with Image.open(out / name) as image:
            assert image.width > 200 and image.height > 100
    assert not list(out.glob(".*tmp*"))


def test_report_rejects_a_file_that_is_not_a_result(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"subsets": {}}))
    with pytest.raises(SystemExit, match=r"other.json: field 'overall'"):
        main(["eval", "report", str(path), "--out", str(tmp_path / "out")])
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(SystemExit, match=r"other.json: not valid JSON"):
        main(["eval", "report", str(path), "--out", str(tmp_path / "out")])


def test_report_refuses_one_results_file_given_twice(tmp_path):
    results = _results(tmp_path / "results.json", "A", {"ag": {"l1": 0.3}})
    twice = tmp_path / "again" / ".." / "results.json"
    (tmp_path / "again").mkdir()
    with pytest.raises(SystemExit, match=r"results.json is given twice .*: it would count as two runs"):
        main(["eval", "report", str(results), str(twice), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_model_predictions_best_of_n_with_idm(small_root, tiny_model_dirs, tmp_path):
    from transformers import pipeline

    from wm_hub.inference.registration import register_pipelines
    from wm_hub.inference.tasks import FORWARD_DYNAMICS_TASK

    model = tiny_model_dirs("chameleon")
    out = tmp_path / "k2" / "R.json"
    extra = ["--predictions", str(model), "--idm", str(model), "--num-candidates", "2", "--seed", "3", "--limit", "1"]
    results = _run(_small_args(small_root, out, *extra, "--batch-size", "4", "--device", "cpu", "--name", "C-FT"))
    assert results["config"]["kind"] == "model" and results["config"]["label"] == "C-FT"
    assert results["config"]["geometry"] == "as_input"
    assert "through the model's image processor (ChameleonImageProcessor" in results["config"]["reference_preparation"]
    assert results["config"]["model"]["num_candidates"] == 2 and results["config"]["model"]["idm"] == str(model)

    # The saved predictions are the pipeline's own best-of-2 picks for the same batch and seed.
    register_pipelines()
    fdm = pipeline(FORWARD_DYNAMICS_TASK, model=str(model), device="cpu")
    rows = json.loads((small_root / "test.json").read_text())
    first = {"ag/0": rows[0], "whatsup/2": rows[2]}  # --limit 1: the first row of each subset, one batch
    sources = [Image.open(small_root / row["input"]).convert("RGB") for row in first.values()]
    actions = [row["instruction"] for row in first.values()]
    expected = fdm(sources, actions, num_candidates=2, verifier=str(model), seed=3)
    assert sorted(
        p.relative_to(out.parent / "predictions").as_posix() for p in out.parent.glob("predictions/*/*")
    ) == [
        "ag/0.png",
        "whatsup/2.png",
    ]
    for row_id, result in zip(first, expected):
        with Image.open(out.parent / "predictions" / f"{row_id}.png") as saved:
            assert saved.size == result["image"].size
            assert np.array_equal(np.asarray(saved), np.asarray(result["image"].convert("RGB")))

    with pytest.raises(SystemExit, match="'./no-such-preds': not copy or ip2p, no such folder"):
        main(["eval", "aurora", *_small_args(small_root, tmp_path / "x.json", "--predictions", "./no-such-preds")])
    with pytest.raises(SystemExit, match="needs a forward-dynamics model"):
        main(["eval", "aurora", *_small_args(small_root, tmp_path / "x.json", "--predictions", "copy", "--idm", "m")])


def test_references_are_prepared_as_the_predictor_prepared_its_input(tiny_model_dirs):
    from wm_hub.evaluation.aurora import AuroraEvalConfig, reference_preparation
    from wm_hub.evaluation.image_metrics import l1_distance
    from wm_hub.models.loading import load_backbone

    wide = Image.new("RGB", (96, 32), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 32, 32))  # red left third, blue elsewhere: a centre crop keeps only blue
    model = str(tiny_model_dirs("chameleon"))
    prepare, rule = reference_preparation(AuroraEvalConfig(data_dir=".", predictions=model, out="R.json"))
    seen = load_backbone(model).preprocess([wide])  # what the FDM's VQ encoder was given
    prepared = prepare(wide)
    assert prepared.size == (64, 64) and "ChameleonImageProcessor" in rule
    assert np.abs(np.asarray(prepared, dtype=float) / 127.5 - 1 - seen[0].permute(1, 2, 0).numpy()).max() < 1 / 127
    stretched = wide.resize((64, 64), Image.Resampling.BICUBIC)
    assert l1_distance(prepared, Image.new("RGB", (64, 64), (0, 0, 255))) < 0.01  # the crop: all blue
    assert l1_distance(stretched, Image.new("RGB", (64, 64), (0, 0, 255))) > 0.2  # the old rule kept the red third

    ip2p, rule = reference_preparation(AuroraEvalConfig(data_dir=".", predictions="ip2p", out="R.json"))
    assert ip2p(wide).size == (512, 512) and "512 x 512" in rule
    for kind in ("copy", "ip2p"):
        prepared, rule = reference_preparation(
            AuroraEvalConfig(data_dir=".", predictions=kind, out="R.json", geometry="stretch")
        )
        assert prepared is None and rule.startswith("stretch")
    assert reference_preparation(AuroraEvalConfig(data_dir=".", predictions="copy", out="R.json"))[0] is None


def test_judge_metric_through_a_local_openai_server(small_root, openai_server, tmp_path):
    replies = {
        "make it 0": '{"score": [6, 8], "reasoning": "fine"}',
        "make it 1": "I cannot judge this.",
        "make it 2": 'Verdict: {"score": [3, 9], "reasoning": "weak edit"}',
        "make it 3": '```json\n{"score": [10, 2], "reasoning": "over-edited"}\n```',
    }
    openai_server.responder = lambda body: Reply(content=replies[instruction_of(body)])
    openai_server.script(Reply.failure(429, retry_after="0"), Reply.failure(500))
    out = tmp_path / "run" / "R.json"
    judge = ["--predictions", "copy", "--metrics", "l1,judge", "--judge-base-url", openai_server.base_url]
    args = _small_args(
        small_root, out, *judge, "--judge-model", "gpt-4o-2024-11-20", "--report", str(tmp_path / "r.md")
    )
    results = _run(args)

    ag, whatsup = results["subsets"]["ag"], results["subsets"]["whatsup"]
    assert (ag["judge"], ag["judge_es"], ag["judge_me"], ag["judge_unparsable"]) == (6, 6, 8, 1)
    assert (whatsup["judge"], whatsup["judge_es"], whatsup["judge_me"]) == (2.5, 6.5, 5.5)
    assert whatsup["judge_parsed"] == 2 and whatsup["judge_unparsable"] == 0
    assert results["overall"]["judge"] == pytest.approx(4.25) and results["overall"]["judge_unparsable"] == 1
    assert results["overall"]["judge_usage"]["total_tokens"] == 4 * 1125
    sent = openai_server.chat_requests()
    assert len(sent) == 6 and sorted(request.status for request in sent)[-2:] == [429, 500]
    assert {request.body["model"] for request in sent} == {"gpt-4o-2024-11-20"}
    records = {r["id"]: r for r in map(json.loads, out.with_name("R.rows.jsonl").read_text().splitlines())}
    assert records["ag/1"]["judge"]["raw"] == "I cannot judge this." and records["ag/1"]["judge"]["score"] is None
    assert records["whatsup/3"]["judge"]["score"] == 2
    assert "| AG | 6.00 |" in (tmp_path / "r.md").read_text()

    # A rerun is served from the reply cache beside the results: the server sees no request.
    openai_server.reset()
    rerun = _run(args)
    assert openai_server.chat_requests() == []
    assert rerun["subsets"]["ag"]["judge"] == 6 and rerun["overall"]["judge_cached"] == 4
    assert (out.parent / "judge_cache").is_dir()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert openai_server.api_key.encode() not in path.read_bytes(), path
