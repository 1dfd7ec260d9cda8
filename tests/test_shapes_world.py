"""Shapes world: deterministic rendering, exact changed cells, template actions, smooth videos, hidden truth."""

from __future__ import annotations

import json
import re

import datasets
import numpy as np
import pytest

from dataset_builders.shapes_world import ShapesWorldBuilder
from wm_hub.cli import main
from wm_hub.data.builder_registry import builder_class
from wm_hub.data.schema import TRIPLET_FEATURES
from wm_hub.data.shapes_world import ACTION_KINDS, PALETTE, Scene, ShapesWorld, WorldConfig, cell_token_indices

STEPS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # cell (column, row), rows go down
NAME = r"the (\w+) (\w+)"
TEMPLATES = {
    "move": re.compile(rf"move {NAME} (left|right|up|down) by (\d+) cells?"),
    "add": re.compile(r"add an? (\w+) (\w+) at row (\d+), column (\d+)"),
    "remove": re.compile(rf"remove {NAME}"),
    "recolour": re.compile(rf"paint {NAME} (\w+)"),
    "reshape": re.compile(rf"turn {NAME} into an? (\w+)"),
    "swap": re.compile(rf"swap {NAME} and {NAME}"),
}


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def differing_cells(source, target, grid: int) -> set[tuple[int, int]]:
    """Cells with at least one differing pixel, found from the images alone."""
    diff = (pixels(source) != pixels(target)).any(axis=-1)
    size = diff.shape[0] // grid
    return {
        (x, y)
        for y in range(grid)
        for x in range(grid)
        if diff[y * size : (y + 1) * size, x * size : (x + 1) * size].any()
    }


def board(scene: Scene) -> dict[tuple[str, str], tuple[int, int]]:
    """``{(colour, shape): cell}``; also checks the scene is valid (distinct names and cells)."""
    cells = {(obj.colour, obj.shape): obj.cell for obj in scene.objects}
    assert len(cells) == len(set(cells.values())) == len(scene.objects)
    return cells


def png_rows(rows) -> list[tuple]:
    return [(r["id"], r["source"]["bytes"], r["target"]["bytes"], r["action"], r["frames"]) for r in rows]


def test_same_config_gives_byte_identical_pngs_and_seeds_or_splits_differ():
    first, again = ShapesWorld(), ShapesWorld(WorldConfig())
    assert png_rows(first.triplet_rows("train", 20)) == png_rows(again.triplet_rows("train", 20))
    assert png_rows(first.video_rows("train", 3)) == png_rows(again.video_rows("train", 3))
    other_seed = ShapesWorld(WorldConfig(seed=1))
    assert png_rows(first.triplet_rows("train", 20)) != png_rows(other_seed.triplet_rows("train", 20))
    train = [row[1:] for row in png_rows(first.triplet_rows("train", 20))]
    test = [row[1:] for row in png_rows(first.triplet_rows("test", 20))]
    assert not set(train) & set(test)


@pytest.mark.parametrize("config", [WorldConfig(), WorldConfig(grid=4), WorldConfig(image_size=96, grid=8)])
def test_changed_cells_are_exactly_the_cells_whose_pixels_differ(config):
    world = ShapesWorld(config)
    for index in range(150):
        triplet = world.triplet("train", index)
        assert triplet.changed_cells
        assert differing_cells(triplet.source, triplet.target, config.grid) == triplet.changed_cells, triplet.action
        # and everything outside the changed cells is pixel-identical, background included
        same = pixels(triplet.source) == pixels(triplet.target)
        size = config.cell_size
        for x, y in triplet.changed_cells:
            same[y * size : (y + 1) * size, x * size : (x + 1) * size] = True
        assert same.all()


def test_every_action_template_appears_and_does_what_its_text_says():
    world = ShapesWorld()
    seen = set()
    for index in range(300):
        triplet = world.triplet("train", index)
        kind, text = triplet.action.kind, triplet.action.text
        seen.add(kind)
        match = TEMPLATES[kind].fullmatch(text)
        assert match, text
        before, after = board(triplet.source_scene), board(triplet.target_scene)
        assert all(0 <= c < world.config.grid for cell in after.values() for c in cell)
        groups = match.groups()
        subject = (groups[0], groups[1])
        if kind == "move":
            (dx, dy), distance = STEPS[groups[2]], int(groups[3])
            x, y = before[subject]
            assert after[subject] == (x + dx * distance, y + dy * distance)
            touched = {subject}
        elif kind == "add":
            assert subject not in before and after[subject] == (int(groups[3]) - 1, int(groups[2]) - 1)
            touched = {subject}
        elif kind == "remove":
            assert subject in before and subject not in after
            touched = {subject}
        elif kind == "recolour":
            new = (groups[2], groups[1])
            assert subject not in after and after[new] == before[subject]
            touched = {subject, new}
        elif kind == "reshape":
            new = (groups[0], groups[2])
            assert subject not in after and after[new] == before[subject]
            touched = {subject, new}
        else:
            other = (groups[2], groups[3])
            assert (after[subject], after[other]) == (before[other], before[subject])
            # named in reading order (row, then column), so the two pictures determine the text
            assert before[subject][::-1] < before[other][::-1]
            touched = {subject, other}
        assert {k: v for k, v in before.items() if k not in touched} == {
            k: v for k, v in after.items() if k not in touched
        }
    assert seen == set(ACTION_KINDS)
    assert (
        ShapesWorld(WorldConfig(actions=("add",), min_objects=1, max_objects=2)).triplet("train", 0).action.kind
        == "add"
    )


def test_moves_never_leave_the_board_or_pass_through_objects():
    world = ShapesWorld(WorldConfig(grid=4, max_objects=8))
    for index in range(200):
        triplet = world.triplet("train", index)
        action = triplet.action
        if action.kind == "move":
            dx, dy = STEPS[action.direction]
            x, y = action.subject.cell
            path = [(x + dx * step, y + dy * step) for step in range(1, action.distance + 1)]
            assert all(0 <= c < 4 for cell in path for c in cell)
            assert all(triplet.source_scene.at(cell) is None for cell in path)


def test_video_objects_slide_one_step_per_frame_and_key_frames_show_the_scenes():
    config = WorldConfig(actions_per_video=5)
    world = ShapesWorld(config)
    size, step = config.cell_size, config.cell_size // config.frames_per_cell
    for index in range(4):
        video = world.video("train", index)
        assert len(video.actions) == 5 and {t.action.kind for t in video.actions} <= {"move", "swap"}
        for key, scene in zip(video.key_frames, video.scenes):
            assert video.frames[key].tobytes() == world.render(scene).tobytes()
        for timed in video.actions:
            distance = max(
                abs(a - b) for obj, cell in timed.action.destinations().items() for a, b in zip(obj.cell, cell)
            )
            assert timed.end - timed.start == distance * config.frames_per_cell
            assert video.frames[timed.start - config.hold_frames].tobytes() == video.frames[timed.start].tobytes()
            if timed.action.kind != "move":
                continue
            horizontal = timed.action.direction in ("left", "right")
            for t in range(timed.start, timed.end):
                diff = (pixels(video.frames[t]) != pixels(video.frames[t + 1])).any(axis=-1)
                rows, cols = np.nonzero(diff)
                assert rows.size, "every frame of a move moves"
                along, across = (cols, rows) if horizontal else (rows, cols)
                assert np.ptp(along) < size + step and np.ptp(across) < size


def test_hidden_actions_are_retrievable_but_not_in_the_unlabelled_rows():
    world = ShapesWorld(WorldConfig(actions_per_video=3))
    hidden = list(world.video_rows("test", 3))
    truth = list(world.video_rows("test", 3, reveal_actions=True))
    assert len(hidden) == len(truth) == 9
    assert png_rows(hidden) == [(i, s, t, "", f) for i, s, t, _, f in png_rows(truth)]
    for row, labelled in zip(hidden, truth):
        video = world.video("test", int(row["video"].rsplit("-", 1)[1]))
        i, j = row["frames"]
        assert row["action"] == "" and row["action_class"] is None and row["origin"] == "shapes_world/videos"
        assert [action.text for action in video.actions_between(i, j)] == [labelled["action"]]
        assert labelled["action"] == video.true_action(i, j) and labelled["action_class"] in ("move", "swap")
        text = str({key: value for key, value in row.items() if key not in ("source", "target")})
        assert not any(word in text for word in (*PALETTE, *STEPS, *ACTION_KINDS, "cell"))
    video = world.video("test", 0)
    consecutive = video.pairs("consecutive")
    assert len(consecutive) == sum(t.end - t.start for t in video.actions)
    assert all(len(video.actions_between(i, j)) == 1 for i, j in consecutive)
    whole = (0, len(video.frames) - 1)
    assert video.true_action(*whole) == "; ".join(t.action.text for t in video.actions)
    with pytest.raises(ValueError, match="unknown pair mode"):
        video.pairs("random")


def test_cell_token_indices():
    assert cell_token_indices([(1, 0)], grid=4, token_grid=8) == [2, 3, 10, 11]
    assert cell_token_indices([(7, 7), (0, 0)], grid=8, token_grid=8) == [0, 63]
    with pytest.raises(ValueError, match="whole cells"):
        cell_token_indices([(0, 0)], grid=8, token_grid=4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"grid": 3}, "must divide"),
        ({"grid": 16}, "too small"),
        ({"shapes": ("square", "hexagon")}, "shapes must be"),
        ({"actions": ()}, "actions must be"),
        ({"min_objects": 4, "max_objects": 3}, "min_objects"),
        ({"frames_per_cell": 9}, "frames_per_cell"),
    ],
)
def test_bad_world_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**kwargs)


def test_builder_yields_the_generator_rows_with_the_triplet_features(tmp_path):
    assert builder_class("shapes_world") is ShapesWorldBuilder
    built = {}
    for name in ("triplets", "videos", "videos_truth"):
        builder = ShapesWorldBuilder(cache_dir=str(tmp_path), config_name=name, data_dir=None, num_train=6, num_test=2)
        builder.download_and_prepare()
        built[name] = builder.as_dataset()
        assert built[name]["train"].features == TRIPLET_FEATURES
        assert built[name]["test"].num_rows > 0
    world = ShapesWorld()
    undecoded = built["triplets"]["train"].cast_column("source", datasets.Image(decode=False))
    expected = list(world.triplet_rows("train", 6))
    assert [row["source"]["bytes"] for row in undecoded] == [row["source"]["bytes"] for row in expected]
    assert built["triplets"]["train"]["action"] == [row["action"] for row in expected]
    videos, truth = built["videos"]["train"], built["videos_truth"]["train"]
    assert videos["id"] == truth["id"] and videos["frames"] == truth["frames"]
    assert set(videos["action"]) == {""} and all(truth["action"])
    assert set(videos["action_class"]) == {None}

    with pytest.raises(ValueError, match="unknown pairs"):
        ShapesWorldBuilder(cache_dir=str(tmp_path), config_name="videos", pairs="random").download_and_prepare()
    with pytest.raises(ValueError, match="must divide"):
        ShapesWorldBuilder(cache_dir=str(tmp_path), config_name="triplets", grid=3).download_and_prepare()


def test_data_build_writes_the_default_videos_as_a_hub_folder(tmp_path, capsys):
    out = tmp_path / "shapes-videos"
    assert main(["data", "build", "shapes_world", "--config", "videos", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == {"train": 800, "test": 80}
    test = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))["test"]
    assert test.features == TRIPLET_FEATURES and set(test["action"]) == {""}
    assert test["id"] == [row["id"] for row in ShapesWorld().video_rows("test", 20)]
