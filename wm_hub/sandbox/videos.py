"""Unlabelled sandbox videos as files: what ``wm-hub keyframes`` reads in the demo's bootstrapping loop.

The sandbox world's videos (:data:`SANDBOX_VIDEO_WORLD`) play ``actions_per_video`` moves and swaps, each in one
frame (objects jump), after ``hold_frames`` still frames. Optical flow is zero on still frames and positive on an
action's frame, so the paper's key-frame rule (top ``K_f`` flow frames at least ``I_f`` apart) finds exactly the
frame of each action when ``hold_frames + 1 >= I_f``, and consecutive key frames are one action apart: their true
action (:meth:`~wm_hub.data.shapes_world.ShapesVideo.true_action`) is the one the IDM must name.

Files are lossless FFV1 in Matroska (``.mkv``, BGR0 pixels): decoding gives the rendered pixels back exactly.
``truth.jsonl`` beside the class folder records each video's hidden actions and their frames, for scoring the
IDM's labels; annotation never reads it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import av
from tqdm import tqdm

from wm_hub.atomic_io import write_jsonl
from wm_hub.data.shapes_world import ShapesWorld, WorldConfig
from wm_hub.sandbox.world import SANDBOX_VIDEO_WORLD

VIDEO_CLASS = "shapes"
TRUTH_FILE = "truth.jsonl"


def write_sandbox_videos(
    root: str | Path, num_videos: int, split: str = "unlabelled", world: WorldConfig | None = None
):
    """Write ``num_videos`` videos to ``root/shapes/<id>.mkv`` and their hidden truth to ``root/truth.jsonl``.

    Videos already written are kept (a rerun finishes an interrupted one); each file is written under a temporary
    name and renamed, so no half-written video is ever read.

    Returns:
        The paths of the videos.
    """
    world = world or SANDBOX_VIDEO_WORLD
    painter = ShapesWorld(world)
    folder = Path(root) / VIDEO_CLASS
    folder.mkdir(parents=True, exist_ok=True)
    truth, paths = [], []
    for index in tqdm(range(num_videos), desc="writing sandbox videos", unit="video"):
        video = painter.video(split, index)
        path = folder / f"{video.id}.mkv"
        paths.append(path)
        truth.append(
            {
                "video": f"{VIDEO_CLASS}/{video.id}",
                "actions": [{"text": t.action.text, "start": t.start, "end": t.end} for t in video.actions],
            }
        )
        if path.is_file():
            continue
        tmp = path.with_name(path.stem + ".tmp.mkv")
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream("ffv1", rate=25)
            stream.width = stream.height = world.image_size
            stream.pix_fmt = "bgr0"
            # a video repeats a few pictures (still frames are the same object): convert each to bgr0 once
            converted: dict[int, av.VideoFrame] = {}
            for index, frame in enumerate(video.frames):
                if id(frame) not in converted:
                    converted[id(frame)] = av.VideoFrame.from_image(frame).reformat(format="bgr0")
                picture = converted[id(frame)]
                picture.pts = index
                container.mux(stream.encode(picture))
            container.mux(stream.encode())
        os.replace(tmp, path)
    write_jsonl(Path(root) / TRUTH_FILE, ({"world": dataclasses.asdict(world), **row} for row in truth))
    return paths


def true_action(truth: dict, i: int, j: int) -> str:
    """The hidden action(s) between frames ``i < j`` of a video's truth row (as ``ShapesVideo.true_action``)."""
    return "; ".join(a["text"] for a in truth["actions"] if a["start"] < j and a["end"] > i)


def label_accuracy(root: str | Path, rows: list[dict]) -> float:
    """Share of annotated key-frame pairs (``wm-hub annotate`` rows) whose action is the hidden true one.

    Args:
        root: The folder :func:`write_sandbox_videos` wrote (its ``truth.jsonl`` is read).
        rows: Annotation rows (``video``, ``frames``, ``action``).
    """
    lines = (Path(root) / TRUTH_FILE).read_text().splitlines()
    truth = {row["video"]: row for row in map(json.loads, lines)}
    if not rows:
        raise ValueError("no annotated pairs to score")
    return sum(row["action"] == true_action(truth[row["video"]], *row["frames"]) for row in rows) / len(rows)
