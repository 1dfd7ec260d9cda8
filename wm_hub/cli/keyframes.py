"""``wm-hub keyframes``: the motion key frames of videos, saved as images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wm_hub.atomic_io import read_jsonl_log, write_json, write_jsonl, write_with


def _keyframes(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from wm_hub.bootstrap.keyframes import (
        VIDEO_EXTENSIONS,
        KeyframeConfig,
        VideoDecodeError,
        find_keyframes,
        find_videos,
        read_frames,
    )

    try:
        config = KeyframeConfig(args.num_keyframes, args.min_interval, args.max_side or None)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    videos: dict[str, Path] = {}  # absolute video path -> its image folder under --out
    for name in args.videos:
        path = Path(name)
        if path.is_dir():
            videos.update(
                (str(video.resolve()), video.relative_to(path).with_suffix("")) for video in find_videos(path)
            )
        elif path.is_file():
            videos[str(path.resolve())] = Path(path.stem)
        else:
            raise SystemExit(f"error: {name}: no such file or folder")
    if not videos:
        raise SystemExit(f"error: no video files ({' '.join(VIDEO_EXTENSIONS)}) in {' '.join(args.videos)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {out} is a file: give a folder for the key frames")
    settings = {name: getattr(config, name) for name in ("num_keyframes", "min_interval", "max_side")}
    recorded = out / "keyframes_config.json"
    if recorded.is_file():
        before = json.loads(recorded.read_text())
        for name, value in settings.items():
            if before.get(name) != value:
                flag = "--" + name.replace("_", "-")
                raise SystemExit(
                    f"error: {out} was started with {flag} {before.get(name)}, now {value}: resume with the same "
                    "settings, or choose another --out"
                )
    out.mkdir(parents=True, exist_ok=True)
    if not recorded.is_file():
        write_json(recorded, settings)
    index = out / "keyframes.jsonl"
    try:
        done = {row["video"]: Path(row["images"][0]).parent for row in read_jsonl_log(index)}  # a torn row is redone
    except (ValueError, KeyError, IndexError) as error:
        raise SystemExit(f"error: {index}: not a key-frame index this command wrote ({error})") from None
    owners = {folder: video for video, folder in done.items()}
    for video, folder in videos.items():
        if owners.setdefault(folder, video) != video:
            raise SystemExit(f"error: {owners[folder]} and {video} would both write {out / folder}; use two --out")
    todo = [(video, folder) for video, folder in videos.items() if video not in done]
    skipped: list[dict[str, str]] = []
    with index.open("a") as rows, tqdm(todo, desc="key frames", unit="video") as progress:
        for video, folder in progress:
            try:
                keyframes = find_keyframes(video, config)
                images = read_frames(video, keyframes.frames)
            except VideoDecodeError as error:
                skipped.append({"video": video, "reason": error.reason})
                progress.set_postfix(skipped=len(skipped))
                continue
            (out / folder).mkdir(parents=True, exist_ok=True)
            paths = []
            for frame, image in zip(keyframes.frames, images):
                path = out / folder / f"frame_{frame:06d}.png"
                write_with(path, lambda tmp, image=image: image.save(tmp, format="PNG"))
                paths.append(str(path.relative_to(out)))
            rows.write(json.dumps({**keyframes.to_dict(), "images": paths}) + "\n")  # images first, then the row
            rows.flush()
    skipped_path = write_jsonl(out / "skipped.jsonl", skipped)
    if skipped:
        listing = "; ".join(f"{row['video']} ({row['reason']})" for row in skipped)
        if len(skipped) == len(videos):  # no key frame at all: not a success
            raise SystemExit(f"error: none of the {len(todo)} videos could be decoded ({skipped_path}): {listing}")
        print(f"Skipped {len(skipped)} of {len(todo)} videos that could not be decoded: {listing}", file=sys.stderr)
    summary = {
        "keyframes": str(index),
        "videos": len(todo) - len(skipped),
        "already_done": len(videos) - len(todo),
        "skipped": len(skipped),
        "skipped_videos": str(skipped_path),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _add_keyframes(subparsers) -> None:
    parser = subparsers.add_parser(
        "keyframes",
        help="select the motion key frames of videos (optical flow) and save them as images",
        description="Motion key frames of videos, the frames whose consecutive pairs become (source, target) pairs.\n"
        "For each video (folders are searched recursively for video files), every frame is scored by the mean\n"
        "optical-flow magnitude (Farneback) from the frame before, on frames downscaled to --max-side; the\n"
        "--num-keyframes highest-scoring frames at least --min-interval frames apart are kept, in temporal order\n"
        "(the paper's K_f=6, I_f=20; a video too short for them gets fewer, and a note says so).\n\n"
        "Writes one row per video to OUT/keyframes.jsonl (video, fps, num_frames, frames, scores, note, images) and\n"
        "the key frames at full resolution as OUT/<name>/frame_<index>.png, <name> being the video's path under\n"
        "the folder given, or its file name. Videos that cannot be decoded are skipped, counted and listed in\n"
        "OUT/skipped.jsonl. Rerunning resumes: videos already in keyframes.jsonl are not redone.",
        epilog="examples:\n"
        "  wm-hub keyframes UCF-101/ --out ucf101-keyframes\n"
        "  wm-hub keyframes clip1.mp4 clip2.mp4 --out keyframes --num-keyframes 4 --min-interval 10",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO_OR_DIR", help="video files and folders of videos")
    parser.add_argument("--out", required=True, help="output folder (keyframes.jsonl, skipped.jsonl, images)")
    parser.add_argument("--num-keyframes", type=int, default=6, help="key frames per video (default: 6)")
    parser.add_argument("--min-interval", type=int, default=20, help="least frames between key frames (default: 20)")
    parser.add_argument(
        "--max-side",
        type=int,
        default=160,
        help="longer side in pixels of the frames the flow runs on; 0 for full resolution (default: 160)",
    )
    parser.set_defaults(func=_keyframes)


def register(subparsers) -> None:
    """Add ``wm-hub keyframes``."""
    _add_keyframes(subparsers)
