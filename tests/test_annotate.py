"""IDM annotation: rows and scores, resuming after a hard kill, two accelerate processes, the builder reads it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import pytest
import torch
from fake_slurm import install_fake_slurm
from PIL import Image

from dataset_builders.synthetic_triplets import SyntheticTripletsBuilder
from wm_hub.bootstrap.annotate import CONFIG_FILE, RUN_FILE, AnnotateConfig, action_verb, annotate, read_annotations
from wm_hub.bootstrap.pairs import load_pairs
from wm_hub.cli import main
from wm_hub.data.shapes_world import ShapesWorld
from wm_hub.hub.dataset_folder import build_hub_dataset
from wm_hub.inference.actions import generate_actions
from wm_hub.inference.scoring import action_log_likelihoods

REPO = Path(__file__).resolve().parents[1]
# 3 shapes-world videos of 4 actions: 12 pairs in 6 shards of 2; short greedy actions keep it fast
SETTINGS = {"shard_size": 2, "batch_size": 2, "max_new_tokens": 8}
NUM_PAIRS, NUM_SHARDS = 12, 6
# One torch thread here and in the subprocesses: the same arithmetic, so greedy rows compare exactly.
SUBPROCESS_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def idm_dir(tiny_model_dirs) -> str:
    return str(tiny_model_dirs("chameleon"))


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> str:
    """Unlabelled shapes-world video pairs in the Hub layout (`wm-hub data build shapes_world --config videos`)."""
    out = tmp_path_factory.mktemp("pairs") / "shapes-videos"
    build = build_hub_dataset("shapes_world", out, config_name="videos", num_train=3, num_test=1)
    assert build.num_examples["train"] == NUM_PAIRS
    return str(out)


def run_annotate(idm_dir: str, data: str, out: Path, **settings) -> dict:
    return annotate(AnnotateConfig(idm=idm_dir, data=data, out=str(out), **{**SETTINGS, **settings}))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, idm_dir, pairs_dir, one_thread) -> tuple[Path, list[dict], dict]:
    """One uninterrupted single-process run: (folder, rows, summary)."""
    out = tmp_path_factory.mktemp("reference") / "annotated"
    summary = run_annotate(idm_dir, pairs_dir, out)
    return out, read_annotations(out), summary


def test_every_pair_gets_one_row_with_action_scores_class_and_provenance(reference, pairs_dir):
    out, rows, summary = reference
    truth = datasets.load_dataset(pairs_dir, split="train")
    assert [row["id"] for row in rows] == truth["id"]
    assert sorted(path.name for path in out.glob("annotations-*.jsonl")) == [
        f"annotations-{index:05d}-of-{NUM_SHARDS:05d}.jsonl" for index in range(NUM_SHARDS)
    ]
    assert summary["pairs"] == summary["annotated"] == NUM_PAIRS and summary["already_done"] == 0
    assert summary["processes"] == 1 and summary["pairs_per_second"] > 0
    assert json.loads((out / RUN_FILE).read_text())["pairs"] == NUM_PAIRS
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["plan"] == {**config["plan"], "num_pairs": NUM_PAIRS, "num_shards": NUM_SHARDS, "shard_size": 2}
    for row, video, frames in zip(rows, truth["video"], truth["frames"]):
        assert isinstance(row["action"], str)
        assert row["score"] == row["score_mean"] == pytest.approx(row["score_sum"] / row["num_action_tokens"])
        assert row["score_sum"] < 0 and row["num_action_tokens"] >= 1
        # shapes-world video pairs have no class folder: the class is the action's first word
        assert row["video_class"] is None and row["action_class"] == row["action_verb"] == action_verb(row["action"])
        assert (row["video"], row["frames"], row["origin"]) == (video, frames, "shapes_world/videos")
        assert row["source"] == f"frames/{video}/frame_{frames[0]:06d}.png"
        assert row["target"] == f"frames/{video}/frame_{frames[1]:06d}.png"
    raw = truth.cast_column("source", datasets.Image(decode=False))[0]["source"]["bytes"]
    assert (out / rows[0]["source"]).read_bytes() == raw  # images are copied as they are stored
    assert summary["action_classes"] == dict(sorted(Counter(row["action_class"] for row in rows).items()))
    assert summary["blank_actions"] == sum(row["action"].strip() == "" for row in rows)


def test_scores_and_actions_equal_independent_recomputation(reference, tiny_backbones):
    out, rows, _ = reference
    idm = tiny_backbones("chameleon")

    def image(path: str) -> Image.Image:
        with Image.open(out / path) as opened:
            return opened.convert("RGB")

    sources, targets = [image(row["source"]) for row in rows], [image(row["target"]) for row in rows]
    actions = [row["action"] for row in rows]
    scores = action_log_likelihoods(idm, sources, targets, actions, batch_size=1)
    assert [score.num_tokens for score in scores] == [row["num_action_tokens"] for row in rows]
    assert [score.total for score in scores] == pytest.approx([row["score_sum"] for row in rows], rel=1e-4)
    assert [score.mean for score in scores] == pytest.approx([row["score_mean"] for row in rows], rel=1e-4)
    # greedy actions of the first batch (pairs 0 and 1), generated again the same way
    assert generate_actions(idm, list(zip(sources[:2], targets[:2])), max_new_tokens=8) == actions[:2]


def test_synthetic_triplets_builder_reads_the_output(reference, tmp_path):
    out, rows, _ = reference
    builder = SyntheticTripletsBuilder(cache_dir=str(tmp_path / "cache"), data_dir=str(out))
    builder.download_and_prepare()
    dataset = builder.as_dataset("train")
    assert dataset["id"] == [row["id"] for row in rows]
    assert dataset["action"] == [row["action"] for row in rows]
    assert dataset["score"] == pytest.approx([row["score_mean"] for row in rows], rel=1e-6)  # float32
    assert dataset["action_class"] == [row["action_class"] for row in rows]
    assert dataset["frames"] == [row["frames"] for row in rows]
    assert set(dataset["origin"]) == {"synthetic/shapes_world/videos"}
    raw = dataset.cast_column("target", datasets.Image(decode=False))[5]["target"]["bytes"]
    assert raw == (out / rows[5]["target"]).read_bytes()


KILL_AFTER_TWO_SHARDS = """
import os, signal, sys
import wm_hub.bootstrap.annotate as annotate
from wm_hub.cli import main

written = []
write = annotate.write_jsonl

def write_two_shards_then_die(path, rows, **dumps):
    if len(written) == 2:  # the third shard: half its rows reach the temporary file, then a hard kill
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(__import__("json").dumps(row) + "\\n" for row in rows[:1]))
        os.kill(os.getpid(), signal.SIGKILL)
    write(path, rows, **dumps)
    written.append(path)

annotate.write_jsonl = write_two_shards_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_run_resumes_to_identical_rows(reference, idm_dir, pairs_dir, tmp_path, one_thread):
    out = tmp_path / "annotated"
    flags = ["--shard-size", "2", "--batch-size", "2", "--max-new-tokens", "8"]
    command = [sys.executable, "-c", KILL_AFTER_TWO_SHARDS, "annotate", "--idm", idm_dir, "--data", pairs_dir]
    killed = subprocess.run(
        [*command, "--out", str(out), *flags], env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert len(list(out.glob("annotations-*.jsonl"))) == 2
    assert list(out.glob(".annotations-*.tmp"))  # the shard being written when it died
    assert not (out / RUN_FILE).exists()

    summary = run_annotate(idm_dir, pairs_dir, out)
    assert summary["resumed_shards"] == 2 and summary["already_done"] == 4 and summary["annotated"] == 8
    assert not list(out.glob(".annotations-*.tmp")) and not list(out.rglob(".*.tmp"))
    assert read_annotations(out) == reference[1]  # every pair exactly once, the same rows
    again = run_annotate(idm_dir, pairs_dir, out)  # a finished folder: nothing left to do
    assert again["annotated"] == 0 and again["resumed_shards"] == NUM_SHARDS
    first = read_annotations(out)[0]
    (out / first["target"]).unlink()  # a picture deleted since: its shard is done again, the rest kept
    again = run_annotate(idm_dir, pairs_dir, out)
    assert again["annotated"] == 2 and again["resumed_shards"] == NUM_SHARDS - 1
    assert (out / first["target"]).is_file() and read_annotations(out) == reference[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_accelerate_processes_write_the_same_rows_as_one(reference, idm_dir, pairs_dir, tmp_path):
    out = tmp_path / "annotated"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "recipes/accelerate_configs/cpu2.yaml"), "--main_process_port", str(_free_port()),
        str(REPO / "recipes/annotate.py"), "--config", str(REPO / "recipes/tiny/annotate.yaml"),
        "--idm", idm_dir, "--data", pairs_dir, "--out", str(out),
        "--shard_size", "2", "--batch_size", "2", "--max_new_tokens", "8",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    summary = json.loads((out / RUN_FILE).read_text())
    assert summary["processes"] == 2 and summary["annotated"] == NUM_PAIRS
    assert sorted(item["pairs"] for item in summary["per_process"]) == [6, 6]  # disjoint halves of the shards
    assert read_annotations(out) == reference[1]
    assert "pairs/s" in done.stdout


@pytest.fixture
def keyframe_folder(tmp_path) -> Path:
    """A `wm-hub keyframes` output folder: two videos in a class folder, one given by file name."""
    root = tmp_path / "kf"
    video = ShapesWorld().video("test", 0)
    rows = []
    for name, frames in (("slide/clip-a", [0, 6, 20]), ("slide/clip-b", [6, 20]), ("loose", [0, 6])):
        (root / name).mkdir(parents=True)
        images = []
        for frame in frames:
            video.frames[frame].save(root / name / f"frame_{frame:06d}.png")
            images.append(f"{name}/frame_{frame:06d}.png")
        rows.append(
            {"video": f"/videos/{name}.mp4", "fps": 25.0, "num_frames": 30, "frames": frames, "images": images}
        )
    (root / "keyframes.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def test_keyframe_folder_pairs_keep_video_class_and_frames(keyframe_folder, idm_dir, tmp_path, one_thread):
    pairs = load_pairs(keyframe_folder).pairs
    assert [pair.id for pair in pairs] == ["slide/clip-a:0-6", "slide/clip-a:6-20", "slide/clip-b:6-20", "loose:0-6"]
    assert [pair.input_class for pair in pairs] == ["slide"] * 3 + [None]
    assert [pair.origin for pair in pairs] == ["video_keyframes/slide"] * 3 + ["video_keyframes"]
    out = tmp_path / "annotated"
    summary = run_annotate(idm_dir, str(keyframe_folder), out, shard_size=3)
    rows = read_annotations(out)
    assert summary["shards"] == 2 and [row["id"] for row in rows] == [pair.id for pair in pairs]
    assert [row["action_class"] for row in rows[:3]] == ["slide"] * 3  # the class folder, as the paper stratifies
    assert rows[3]["action_class"] == action_verb(rows[3]["action"])  # no class folder: the verb
    assert rows[1]["source"] == "frames/slide/clip-a/frame_000006.png" and rows[1]["frames"] == [6, 20]
    assert (out / rows[1]["source"]).read_bytes() == (keyframe_folder / "slide/clip-a/frame_000006.png").read_bytes()
    run_annotate(idm_dir, str(keyframe_folder), tmp_path / "verbs", shard_size=3, class_source="verb")
    verbs = read_annotations(tmp_path / "verbs")
    assert [row["action_class"] for row in verbs] == [action_verb(row["action"]) for row in rows]
    with pytest.raises(ValueError, match="class_source='input' but pair 'loose:0-6'"):
        run_annotate(idm_dir, str(keyframe_folder), tmp_path / "input", class_source="input")


def test_action_verb_is_the_first_word_lowercased():
    assert action_verb("Move the red square left by 2 cells.") == "move"
    assert action_verb("  don't touch it") == "don't"
    assert action_verb("3 cells: swap them") == "cells"
    assert action_verb("") == action_verb("42 !?") == "(none)"


def test_resuming_with_other_settings_or_a_tampered_shard_is_refused(reference, idm_dir, pairs_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference[0], out)
    with pytest.raises(ValueError, match="started with max_new_tokens=8, now 16"):
        run_annotate(idm_dir, pairs_dir, out, max_new_tokens=16)
    with pytest.raises(ValueError, match="started with shard_size=2, now 3"):
        run_annotate(idm_dir, pairs_dir, out, shard_size=3)
    settings = (out / CONFIG_FILE).read_text()
    for broken, message in (("{", "not valid JSON"), ("[1]", "expected a JSON object"), ("{}", "not an annotation")):
        (out / CONFIG_FILE).write_text(broken)
        with pytest.raises(ValueError, match=f"{CONFIG_FILE}: {message}"):
            run_annotate(idm_dir, pairs_dir, out)
    (out / CONFIG_FILE).write_text(settings)
    shard = out / f"annotations-00001-of-{NUM_SHARDS:05d}.jsonl"
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join([lines[0].replace(reference[1][2]["id"], "someone-else"), *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=f"{shard.name}: holds ids"):
        run_annotate(idm_dir, pairs_dir, out)
    shard.write_text("{cut sho\n")
    with pytest.raises(ValueError, match=f"{shard.name}:1: not an annotation row"):
        run_annotate(idm_dir, pairs_dir, out)


def test_bad_input_gets_one_clear_error(keyframe_folder, idm_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken/notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="error: out .*taken exists and is not an annotation folder"):
        main(["annotate", "--idm", idm_dir, "--data", str(keyframe_folder), "--out", str(tmp_path / "taken")])
    (keyframe_folder / "slide/clip-b/frame_000020.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"keyframes.jsonl:2: images\[1\] .*clip-b/frame_000020.png"):
        load_pairs(keyframe_folder)
    (keyframe_folder / "keyframes.jsonl").write_text('{"frames": [1, 2], "images": ["a.png"]}\n')
    with pytest.raises(ValueError, match="keyframes.jsonl:1: 2 frames but 1 images"):
        load_pairs(keyframe_folder)
    table = tmp_path / "pairs.parquet"
    datasets.Dataset.from_dict({"id": ["a"], "source": [None]}).to_parquet(table)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['target'\]"):
        load_pairs(table)
    table.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"pairs.parquet: not a Parquet file"):
        load_pairs(table)
    with pytest.raises(
        SystemExit, match=r"error: .*no-such-data: no such file or folder here, and not a dataset on the Hub"
    ):
        main(["annotate", "--idm", idm_dir, "--data", str(tmp_path / "no-such-data"), "--out", str(tmp_path / "o")])


def test_a_wrong_idm_leaves_no_folder_behind(keyframe_folder, idm_dir, tmp_path, one_thread):
    out = tmp_path / "annotated"
    with pytest.raises(SystemExit, match="idm .*no-such-idm: cannot load it"):
        main(["annotate", "--idm", str(tmp_path / "no-such-idm"), "--data", str(keyframe_folder), "--out", str(out)])
    assert not (out / "annotation_config.json").exists()
    fdm = tmp_path / "an-fdm"
    shutil.copytree(idm_dir, fdm)
    (fdm / "training_run.json").write_text(json.dumps({"task": "fdm"}))
    with pytest.raises(SystemExit, match="an-fdm was fine-tuned as an FDM"):
        main(["annotate", "--idm", str(fdm), "--data", str(keyframe_folder), "--out", str(out)])
    assert not (out / "annotation_config.json").exists()
    (fdm / "training_run.json").write_text("{bad")  # a corrupt run summary must not hide what the model is
    with pytest.raises(SystemExit, match=r"an-fdm/training_run.json: not valid JSON"):
        main(["annotate", "--idm", str(fdm), "--data", str(keyframe_folder), "--out", str(out)])
    (fdm / "training_run.json").unlink()
    weights = fdm / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(SystemExit, match=r"idm .*an-fdm: cannot load it \(.*an-fdm: unreadable weights"):
        main(["annotate", "--idm", str(fdm), "--data", str(keyframe_folder), "--out", str(out)])
    assert not (out / "annotation_config.json").exists()
    # the corrected command runs in the same folder
    assert main(["annotate", "--idm", idm_dir, "--data", str(keyframe_folder), "--out", str(out)]) == 0
    assert (out / "annotation_config.json").is_file()


def test_a_corrupt_key_frame_is_named_by_row_and_field(keyframe_folder, idm_dir, tmp_path, one_thread):
    (keyframe_folder / "slide/clip-b/frame_000020.png").write_bytes(b"not a png at all")
    with pytest.raises(SystemExit) as error:
        main(["annotate", "--idm", idm_dir, "--data", str(keyframe_folder), "--out", str(tmp_path / "annotated")])
    message = str(error.value)
    assert "id 'slide/clip-b:6-20'" in message and "field 'target': not an image" in message
    assert "BytesIO" not in message


def test_a_pair_without_an_image_is_named(tmp_path, idm_dir):
    image = ShapesWorld().video("test", 0).frames[0]
    dataset = datasets.Dataset.from_dict(
        {"id": ["p0", "p1"], "source": [image, image], "target": [image, None]},
        features=datasets.Features(
            {"id": datasets.Value("string"), "source": datasets.Image(), "target": datasets.Image()}
        ),
    )
    dataset.to_parquet(tmp_path / "pairs.parquet")
    with pytest.raises(ValueError, match=r"pairs.parquet: row 1 \(id 'p1'\): field 'target': no image"):
        run_annotate(idm_dir, str(tmp_path / "pairs.parquet"), tmp_path / "out")


def test_cli_help_lists_annotate(capsys):
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    assert "synthetic_triplets" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["anole-7b", "liquid-7b", "emu3"])
def test_the_paper_recipes_sample_the_labels_at_temperature_one(model):
    from wm_hub.config_parser import ConfigParser

    recipe = str(REPO / f"recipes/{model}/annotate.yaml")
    (config,) = ConfigParser((AnnotateConfig,)).parse_args_and_config(["--config", recipe])
    assert config.do_sample is True and config.temperature == 1.0  # paper Eq. 1: the action is sampled
    assert config.idm == f"outputs/{model}-idm"  # what recipes/<model>/idm.yaml writes
    (greedy,) = ConfigParser((AnnotateConfig,)).parse_args_and_config(["--config", recipe, "--do_sample", "false"])
    assert greedy.do_sample is False


def test_the_tiny_recipe_parses_into_the_config_and_flags_override_it():
    from trl import TrlParser

    recipe = str(REPO / "recipes/tiny/annotate.yaml")
    (config,) = TrlParser((AnnotateConfig,)).parse_args_and_config(["--config", recipe, "--batch_size", "3"])
    assert (config.idm, config.data, config.out) == ("tiny-chameleon", "shapes-videos", "outputs/tiny-annotated")
    assert (config.batch_size, config.max_new_tokens, config.shard_size, config.do_sample) == (3, 16, 32, False)


def test_datatrove_tasks_finish_a_started_folder_with_the_rows_of_one_process(
    reference, idm_dir, pairs_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the spawned workers compute as this one-thread process does
    out = tmp_path / "annotated"
    out.mkdir()
    shutil.copy(reference[0] / CONFIG_FILE, out / CONFIG_FILE)  # a folder whose run died after shards 0 and 3
    for shard in (0, 3):
        name = f"annotations-{shard:05d}-of-{NUM_SHARDS:05d}.jsonl"
        shutil.copy(reference[0] / name, out / name)
        for row in map(json.loads, (out / name).read_text().splitlines()):  # a shard's pictures come before it
            for image in (row["source"], row["target"]):
                (out / image).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(reference[0] / image, out / image)
    flags = ["--shard-size", "2", "--batch-size", "2", "--max-new-tokens", "8"]
    command = ["annotate", "--idm", idm_dir, "--data", pairs_dir, "--out", str(out), *flags]
    assert main([*command, "--executor", "local", "--tasks", "3", "--workers", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.split("\nannotated ")[0])
    assert (summary["annotated"], summary["already_done"], summary["resumed_shards"]) == (8, 4, 2)
    assert summary["processes"] == 3 and [item["pairs"] for item in summary["per_process"]] == [
        0,
        4,
        4,
    ]  # shard % 3: 1 4 | 2 5
    assert read_annotations(out) == reference[1]  # every pair once, the rows of one process
    assert main([*command, "--executor", "local", "--tasks", "3", "--workers", "2"]) == 0  # nothing left to do
    assert json.loads(capsys.readouterr().out.split("\nannotated ")[0])["annotated"] == 0


def test_slurm_tasks_are_submitted_then_merged_into_the_rows_of_one_process(
    reference, idm_dir, pairs_dir, tmp_path, monkeypatch, capsys
):
    log = install_fake_slurm(tmp_path, monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "annotated"
    flags = ["--shard-size", "2", "--batch-size", "2", "--max-new-tokens", "8", "--slurm-partition", "gpu"]
    command = ["annotate", "--idm", idm_dir, "--data", pairs_dir, "--out", str(out), *flags]
    command += ["--executor", "slurm", "--tasks", "2"]
    assert main(command) == 0
    pending = json.loads(capsys.readouterr().out)["pending"]
    assert (pending["state"], pending["tasks"], pending["slurm_job"]) == ("submitted", 2, "4242")
    assert not (out / RUN_FILE).exists() and "array=0-1" in log.read_text()
    assert main(command) == 0  # the job is over: merged
    summary = json.loads(capsys.readouterr().out.split("\nannotated ")[0])
    assert summary["annotated"] == NUM_PAIRS and read_annotations(out) == reference[1]


def test_annotate_leaves_datatrove_tasks_to_the_executor_entry_point(tmp_path):
    """`annotate()` is one process's share; `wm-hub annotate --executor` goes through annotate_on_executor."""
    config = AnnotateConfig(idm="unused", data="unused", out=str(tmp_path / "out"), executor="local", tasks=2)
    with pytest.raises(ValueError, match="annotate_on_executor"):
        annotate(config)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), 0.0])
def test_a_temperature_that_is_not_positive_and_finite_is_refused_before_anything_is_written(tmp_path, temperature):
    with pytest.raises(ValueError, match="temperature must be > 0 and finite"):
        AnnotateConfig(idm="m", data="d", out=str(tmp_path / "out"), do_sample=True, temperature=temperature)
    assert not (tmp_path / "out").exists()
