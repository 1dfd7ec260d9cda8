"""Recognition-weight panels (paper Figure 3): the weights land where the action happens."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.training.weight_maps import heat_colors, weight_panel, write_weight_panels


def scene(objects: list[tuple[tuple[int, int], tuple[int, int, int]]]) -> Image.Image:
    """64 px scene on an 8x8 cell grid (8 px per cell = one tiny-VQ token); objects are (cell (x, y), colour)."""
    image = Image.new("RGB", (64, 64), (230, 230, 230))
    draw = ImageDraw.Draw(image)
    for (x, y), colour in objects:
        draw.rectangle((x * 8, y * 8, x * 8 + 7, y * 8 + 7), fill=colour)
    return image


@pytest.mark.parametrize("arch", ["chameleon", "liquid"])
def test_highest_weights_cover_the_moved_object(arch, tiny_backbones):
    backbone = tiny_backbones(arch)
    rng = random.Random(0)
    for _ in range(5):
        start, end, still_a, still_b = rng.sample([(x, y) for x in range(8) for y in range(8)], 4)
        unchanged = [(still_a, (30, 30, 200)), (still_b, (30, 160, 30))]
        source, target = scene([(start, (220, 30, 30)), *unchanged]), scene([(end, (220, 30, 30)), *unchanged])
        panel, weights = weight_panel(backbone, source, target, display_size=64)
        assert panel.size == (192, 64) and weights.shape == (8, 8)
        torch.testing.assert_close(weights.mean(), torch.tensor(1.0))
        changed = (start, end)
        # every one of the highest-weight tokens sits on (or next to) a changed cell, and both changed cells are hot
        top = [(int(index) % 8, int(index) // 8) for index in weights.flatten().topk(4).indices]
        assert all(min(distance(cell, other) for other in changed) <= 1 for cell in top)
        assert all(min(distance(cell, other) for other in top) <= 1 for cell in changed)
        near = torch.zeros(8, 8, dtype=torch.bool)
        for x, y in changed:
            near[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = True
        assert weights[near].mean() > 5 * weights[~near].mean()
        # unchanged objects beyond the encoder's reach (2 cells) of the changed ones carry ~no weight
        for (x, y), _ in unchanged:
            if min(distance((x, y), other) for other in changed) > 2:
                assert weights[y, x] < 0.25 * weights.max()


def distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Chebyshev distance between grid cells (neighbours, diagonals included, are 1 apart)."""
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]))


def test_identical_frames_give_a_flat_map(tiny_backbones):
    image = scene([((3, 4), (220, 30, 30))])
    _, weights = weight_panel(tiny_backbones("chameleon"), image, image.copy())
    assert torch.equal(weights, torch.ones(8, 8))


def test_panel_files_and_colours(tiny_backbones, tmp_path):
    rows = [
        {"id": f"row/{index}", "source": scene([((index, 1), (220, 30, 30))]), "target": scene([((5, 5), (0, 0, 0))])}
        for index in range(3)
    ]
    written = write_weight_panels(tiny_backbones("chameleon"), rows, tmp_path / "panels", limit=2, display_size=32)
    assert [path.name for path in written] == ["00000-row_0.png", "00001-row_1.png"]
    assert Image.open(written[0]).size == (96, 32)
    assert not list((tmp_path / "panels").glob("*.tmp"))
    colours = heat_colors(np.array([0.0, 1.0]))
    assert colours[0].tolist() == [0, 0, 96] and colours[1].tolist() == [255, 255, 0]


@pytest.mark.parametrize("arch", ["chameleon", "liquid"])
def test_shapes_world_weights_cover_the_changed_cells(arch, tiny_backbones):
    from wm_hub.data.shapes_world import ShapesWorld, WorldConfig

    backbone = tiny_backbones(arch)
    world = ShapesWorld(WorldConfig(grid=8, seed=0))  # one 8 px cell per token of the 64 px tiny backbones
    for index in range(10):
        triplet = world.triplet("train", index)
        changed = sorted(triplet.changed_cells)
        _, weights = weight_panel(backbone, triplet.source, triplet.target, display_size=32)
        top = [(int(i) % 8, int(i) // 8) for i in weights.flatten().topk(len(changed)).indices]
        assert all(min(distance(cell, other) for other in changed) <= 1 for cell in top), triplet.action.text
        near = torch.zeros(8, 8, dtype=torch.bool)
        for x, y in changed:
            near[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = True
        assert weights[near].mean() > 4 * weights[~near].mean(), triplet.action.text


def test_show_weights_command_on_a_built_shapes_world(tiny_model_dirs, tmp_path, capsys):
    import json

    from wm_hub.cli import main
    from wm_hub.hub.dataset_folder import build_hub_dataset

    build_hub_dataset("shapes_world", tmp_path / "shapes", config_name="triplets", num_train=5, num_test=2)
    backbone = tiny_model_dirs("chameleon")  # built (and its output printed) before the command's output is read
    capsys.readouterr()
    args = [
        "data",
        "show-weights",
        "--backbone",
        str(backbone),
        "--data",
        str(tmp_path / "shapes"),
    ]
    assert main([*args, "--out", str(tmp_path / "panels"), "--limit", "3", "--display-size", "48"]) == 0
    panels = json.loads(capsys.readouterr().out)["panels"]
    assert len(panels) == 3 and Image.open(panels[0]).size == (144, 48)
    with pytest.raises(SystemExit, match="split 'validation'"):
        main([*args, "--split", "validation", "--out", str(tmp_path / "other")])
    args[-1] = panels[0]  # a picture is no dataset
    with pytest.raises(SystemExit, match=f"{panels[0]}: a file, not a dataset folder or a .parquet file"):
        main([*args, "--out", str(tmp_path / "other")])
    args[-1] = "no-such-org/no-such-data"  # neither a folder nor reachable (the tests run offline)
    with pytest.raises(
        SystemExit, match="no-such-org/no-such-data: no such file or folder here, and not a dataset on the Hub"
    ):
        main([*args, "--out", str(tmp_path / "other")])
    assert not (tmp_path / "other").exists()


def test_show_weights_reads_a_plain_parquet_and_names_a_row_that_is_no_picture(tiny_model_dirs, tmp_path, capsys):
    import io
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from wm_hub.cli import main

    def png(image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    world = ShapesWorld(WorldConfig())
    triplets = [world.triplet("test", index) for index in range(2)]
    images = {"source": [png(t.source) for t in triplets], "target": [png(t.target) for t in triplets]}
    backbone = str(tiny_model_dirs("chameleon"))
    capsys.readouterr()

    def write(name: str, sources: list[bytes]) -> str:
        # pyarrow's own writer: bytes/path structs without datasets' Image feature in the metadata
        columns = {"id": ["a", "b"]}
        for side, data in (("source", sources), ("target", images["target"])):
            columns[side] = [{"bytes": item, "path": None} for item in data]
        pq.write_table(pa.table(columns), tmp_path / name)
        return str(tmp_path / name)

    plain = write("plain.parquet", images["source"])
    assert main(["data", "show-weights", "--backbone", backbone, "--data", plain, "--out", str(tmp_path / "p")]) == 0
    assert len(json.loads(capsys.readouterr().out)["panels"]) == 2
    cut = write("cut.parquet", [images["source"][0], images["source"][1][:60]])
    with pytest.raises(SystemExit, match=r"--data .*cut.parquet: row 1 \(id 'b'\): field 'source': unreadable"):
        main(["data", "show-weights", "--backbone", backbone, "--data", cut, "--out", str(tmp_path / "q")])
    assert not (tmp_path / "q").exists()
    bomb = write("bomb.parquet", [images["source"][0], png(Image.new("1", (20000, 20000)))])  # 400 megapixels
    with pytest.raises(
        SystemExit, match=r"bomb.parquet: row 1 \(id 'b'\): field 'source': too large to decode \(Image size"
    ):
        main(["data", "show-weights", "--backbone", backbone, "--data", bomb, "--out", str(tmp_path / "q")])
