"""Motion key frames of a video: the frames that a key-frame pair (source, target) is cut from (paper section 3.2).

The paper computes optical flow "to quantify the dynamics per frame" and keeps the top ``K_f = 6`` frames at least
``I_f = 20`` frames apart. Here, precisely:

- **Score of frame t** (:func:`find_keyframes`): the flow estimator applied to the luma (grey) images of frames
  ``t - 1`` and ``t``, decoded with PyAV and downscaled so that their longer side is at most
  :attr:`KeyframeConfig.max_side` (area interpolation). With the default :class:`FarnebackFlow` it is the mean
  magnitude of OpenCV's dense Farneback flow, in pixels of the downscaled frame per frame step: at a fixed
  ``max_side`` it measures motion relative to the frame size, so scores of videos larger than that compare.
  Frame 0 has no predecessor and scores 0.
- **Selection** (:func:`select_keyframes`), the paper's reading: greedy, highest score first (ties: earlier frame
  first); a frame is skipped when it lies within ``min_interval - 1`` frames of a better one already kept, and at
  most ``K`` are kept. A video whose motion is concentrated yields fewer than ``K`` frames (the paper's Table 7
  reports 2.05-3.00 observations per video). Selected frames come back in temporal order.
- **Fixed count** (``fill_to_count``, wm-hub's option): a frame is also skipped when taking it would leave too
  little room to place ``K`` frames in all, so a video that can hold ``K`` frames that far apart always gets ``K``.
  On short clips this drifts towards a regular grid (``carphone_pristine.mp4``, 120 frames: 1, 21, 41, 61, 82,
  117, frame 41 below the median motion), which is why it is not the default.
- **Fewer frames**: :attr:`Keyframes.note` says why a video got fewer than ``K`` (its length, or the spacing).
- **Reproducible scores**: the analysis (resizing and flow) runs on one OpenCV thread without OpenCV's optimised
  kernels (``cv2.setUseOptimized(False)``; the caller's settings are restored after). With them, Farneback's last
  bits depend on where its buffers happen to lie in memory and on the thread pool: one process and datatrove
  workers wrote different scores for 1 video in 400, and so did the same process from one call to the next. The
  plain kernels are as fast at the analysis size (bikes.mp4: 0.9 s against 1.05 s); the parallelism is in the
  worker processes (``--executor``).

Decoding at reduced resolution: H.264 has no reduced-resolution decoding, so every frame is decoded in full; the
speed comes from running the flow on small frames (640x272 -> 160x68 is 16x fewer pixels) and from taking the luma
plane directly (no colour conversion). ``benchmarks/bench_keyframes.py`` measures it against full-resolution flow.

Full-resolution images of the key frames come from a second, decode-only pass (:func:`read_frames`) that stops
after the last key frame. Keeping every decoded frame during the first pass would save that pass (on bikes.mp4 it
takes 0.13 s beside 0.58 s of analysis, about a quarter more) but would hold the whole video in memory, about
0.9 GB for a 10 s 1080p clip, where the second pass holds one frame at a time.

Key frames of many videos as images (:func:`extract_keyframes`, ``wm-hub keyframes``), the folder that
``wm-hub annotate`` reads::

    OUT/keyframes_config.json             num_keyframes, min_interval, max_side, fill_to_count (a resume must use
                                          the same)
    OUT/keyframes.jsonl                   one row per video: Keyframes fields and the images' paths under OUT
    OUT/<name>/frame_000010.png           the key frames at full resolution
    OUT/skipped.jsonl                     the videos of the last run that could not be decoded, and why

``<name>`` is the video's path under the folder given, without its suffix, or the file's stem. A video's images
are written before its row is appended to the index, so a rerun resumes after a crash: videos already in
``keyframes.jsonl`` are not redone (a row torn by the crash is).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from wm_hub.atomic_io import read_json_object, read_jsonl_log, write_json, write_jsonl, write_with
from wm_hub.bootstrap.executors import ExecutorOptions, TasksPending

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")

# 8-bit pixel formats whose first plane is the luma (grey) image, read without any conversion.
_LUMA_FIRST_FORMATS = frozenset(
    {"gray", "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "nv12", "nv21"}
)
# 8-bit packed RGB formats (lossless codecs such as FFV1 write them): bytes per pixel and OpenCV's conversion to grey,
# the same BT.601 luma as FFmpeg's, without building a scaler for every frame (measured 90x faster on 32 px frames).
_PACKED_RGB_FORMATS = {
    "rgb24": (3, cv2.COLOR_RGB2GRAY),
    "bgr24": (3, cv2.COLOR_BGR2GRAY),
    "rgba": (4, cv2.COLOR_RGBA2GRAY),
    "rgb0": (4, cv2.COLOR_RGBA2GRAY),
    "bgra": (4, cv2.COLOR_BGRA2GRAY),
    "bgr0": (4, cv2.COLOR_BGRA2GRAY),
}


class VideoDecodeError(Exception):
    """A file that is not a video PyAV can decode (truncated, corrupt, no video stream, not a video at all).

    Attributes:
        video: The file.
        reason: What went wrong.
    """

    def __init__(self, video: str | Path, reason: str):
        super().__init__(f"{video}: {reason}")
        self.video = str(video)
        self.reason = reason


class FlowEstimator(Protocol):
    """Scores the motion between two consecutive grey frames (2-D ``uint8`` arrays of the same shape)."""

    def __call__(self, previous: np.ndarray, current: np.ndarray) -> float: ...


@dataclass(frozen=True)
class FarnebackFlow:
    """Mean magnitude of OpenCV's dense Farneback optical flow (the default :class:`FlowEstimator`).

    The defaults are OpenCV's tutorial values, also used by the full-resolution reference of the benchmark. A frame
    identical to the one before (a duplicated frame, a still shot) has no motion and scores exactly 0 without running
    the flow (Farneback itself returns a small nonzero mean there, ~0.002 px on 32 px frames).

    Attributes:
        pyr_scale: Scale between pyramid levels.
        levels: Pyramid levels.
        winsize: Averaging window size in pixels.
        iterations: Iterations per pyramid level.
        poly_n: Pixel neighbourhood of the polynomial expansion.
        poly_sigma: Gaussian sigma of the polynomial expansion.
    """

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2

    def __call__(self, previous: np.ndarray, current: np.ndarray) -> float:
        if np.array_equal(previous, current):
            return 0.0
        flow = cv2.calcOpticalFlowFarneback(
            previous,
            current,
            None,
            self.pyr_scale,
            self.levels,
            self.winsize,
            self.iterations,
            self.poly_n,
            self.poly_sigma,
            0,
        )
        return float(cv2.magnitude(flow[..., 0], flow[..., 1]).mean())


@dataclass
class KeyframeConfig:
    """How key frames are chosen.

    Attributes:
        num_keyframes: Key frames per video, ``K_f`` (paper: 6).
        min_interval: Least distance in frames between two key frames, ``I_f`` (paper: 20).
        max_side: Longer side, in pixels, of the frames the flow runs on (``None``: full resolution). Smaller
            frames are not upscaled.
        estimator: Motion score of a pair of consecutive grey frames.
        fill_to_count: Also skip frames that would leave room for fewer than ``num_keyframes`` in all, so that every
            video long enough gets that many (wm-hub's option; the paper keeps the top frames and may get fewer).
    """

    num_keyframes: int = 6
    min_interval: int = 20
    max_side: int | None = 160
    estimator: FlowEstimator = field(default_factory=FarnebackFlow)
    fill_to_count: bool = False

    def __post_init__(self):
        if self.num_keyframes < 1 or self.min_interval < 1:
            raise ValueError(
                f"num_keyframes and min_interval must be >= 1, got {self.num_keyframes}, {self.min_interval}"
            )
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side must be >= 16 pixels or None (full resolution), got {self.max_side}")


@dataclass
class Keyframes:
    """The key frames of one video.

    Attributes:
        video: The video file.
        fps: Average frame rate from the container (``None`` when it does not say).
        num_frames: Frames decoded.
        frames: Selected frame indices (0-based decoding order), increasing.
        scores: Motion score of each selected frame.
        note: Why there are fewer than ``num_keyframes`` frames (``None`` when there are that many).
    """

    video: str
    fps: float | None
    num_frames: int
    frames: list[int]
    scores: list[float]
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return asdict(self)


def max_keyframes(num_frames: int, min_interval: int) -> int:
    """How many frames of a ``num_frames``-frame run can be pairwise at least ``min_interval`` apart."""
    return 0 if num_frames <= 0 else (num_frames - 1) // min_interval + 1


def _capacity(selected: list[int], num_frames: int, min_interval: int) -> int:
    """Frames that ``selected`` (sorted) plus the most frames that still fit around it can reach in all."""
    bounds = [-min_interval, *selected, num_frames - 1 + min_interval]
    gaps = sum(
        max_keyframes(right - left - 2 * min_interval + 1, min_interval) for left, right in zip(bounds, bounds[1:])
    )
    return len(selected) + gaps


def select_keyframes(
    scores: Sequence[float], num_keyframes: int, min_interval: int, fill_to_count: bool = False
) -> list[int]:
    """Greedy top-``num_keyframes`` frames at least ``min_interval`` apart, in temporal order.

    Frames are taken highest score first (ties: earlier first), skipping any frame closer than ``min_interval`` to
    a better one already kept (the paper's reading: a video can yield fewer than ``num_keyframes``). With
    ``fill_to_count``, a frame that would leave room for fewer than
    ``min(num_keyframes, max_keyframes(len(scores), min_interval))`` frames in all is skipped too, so the result
    has fewer frames only when the video is too short to hold them.

    Args:
        scores: Motion score of every frame.
        num_keyframes: Frames to select.
        min_interval: Least distance between two selected frames.
        fill_to_count: Keep room for ``num_keyframes`` frames (wm-hub's fixed-count variant).
    """
    num_frames = len(scores)
    target = min(num_keyframes, max_keyframes(num_frames, min_interval))
    selected: list[int] = []
    for index in sorted(range(num_frames), key=lambda i: (-scores[i], i)):
        if len(selected) == target:
            break
        if any(abs(index - other) < min_interval for other in selected):
            continue
        candidate = sorted([*selected, index])
        if not fill_to_count or _capacity(candidate, num_frames, min_interval) >= target:
            selected = candidate
    return selected


@contextmanager
def _open_video(video: str | Path) -> Iterator[tuple[Any, Any]]:
    """``(container, first video stream)`` of ``video``.

    Decoding keeps FFmpeg's default (slice) threading: frame threading (``thread_type="AUTO"``) was no faster here
    (measured interleaved on bikes.mp4) and swallows decoding errors (a truncated file decoded 5 of its 60 frames
    without raising).
    """
    path = Path(video)
    if not path.is_file():
        raise FileNotFoundError(f"{video}: no such file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise VideoDecodeError(video, f"not a readable video ({error.strerror})") from error
    with container:
        if not container.streams.video:
            raise VideoDecodeError(video, "no video stream")
        yield container, container.streams.video[0]


def _decode(video: str | Path, container: Any, stream: Any) -> Iterator[av.VideoFrame]:
    """The frames of ``stream``; a decoding error (truncated or corrupt data) becomes :class:`VideoDecodeError`."""
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as error:
        raise VideoDecodeError(video, f"truncated or corrupt ({error.strerror})") from error


def _analysis_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled so the longer side is at most ``max_side`` (never upscaled)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    ratio = max_side / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _grey(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """The luma of ``frame`` as a new ``uint8`` array of ``size`` (width, height)."""
    if frame.format.name in _LUMA_FIRST_FORMATS:
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
        if (frame.width, frame.height) == size:
            return luma.copy()  # a view of the plane: the decoder may reuse its memory for a later frame
    elif frame.format.name in _PACKED_RGB_FORMATS:
        channels, conversion = _PACKED_RGB_FORMATS[frame.format.name]
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width * channels]
        luma = cv2.cvtColor(rows.reshape(frame.height, frame.width, channels), conversion)  # a new array
    else:
        luma = frame.to_ndarray(format="gray")  # a new array
    if (frame.width, frame.height) == size:
        return luma
    return cv2.resize(luma, size, interpolation=cv2.INTER_AREA)


@contextmanager
def _reproducible_opencv() -> Iterator[None]:
    """OpenCV on one thread and without its optimised kernels inside the block, the caller's settings restored."""
    threads, optimized = cv2.getNumThreads(), cv2.useOptimized()
    cv2.setNumThreads(1)
    cv2.setUseOptimized(False)
    try:
        yield
    finally:
        cv2.setUseOptimized(optimized)
        cv2.setNumThreads(threads)


def find_keyframes(video: str | Path, config: KeyframeConfig | None = None) -> Keyframes:
    """Score every frame of ``video`` by its motion and select the key frames (see the module docstring).

    Args:
        video: A video file PyAV can decode.
        config: Selection settings (default: :class:`KeyframeConfig`, the paper's K_f=6, I_f=20).

    Raises:
        FileNotFoundError: ``video`` is not a file.
        VideoDecodeError: ``video`` cannot be decoded (not a video, truncated, corrupt, no frames).
    """
    config = config or KeyframeConfig()
    scores: list[float] = []
    previous = size = None
    with _open_video(video) as (container, stream), _reproducible_opencv():
        fps = float(stream.average_rate) if stream.average_rate else None
        for frame in _decode(video, container, stream):
            size = size or _analysis_size(frame.width, frame.height, config.max_side)
            grey = _grey(frame, size)
            score = 0.0 if previous is None else float(config.estimator(previous, grey))
            if not math.isfinite(score):
                raise ValueError(f"{video}: the flow estimator scored frame {len(scores)} {score}")
            scores.append(score)
            previous = grey
    if not scores:
        raise VideoDecodeError(video, "no frames decoded")
    frames = select_keyframes(scores, config.num_keyframes, config.min_interval, config.fill_to_count)
    note = None
    if len(frames) == max_keyframes(len(scores), config.min_interval) < config.num_keyframes:
        note = (
            f"{len(scores)} frames hold at most {len(frames)} key frames {config.min_interval} frames apart "
            f"(asked for {config.num_keyframes})"
        )
    elif len(frames) < config.num_keyframes:
        note = (
            f"{len(frames)} of {config.num_keyframes} key frames: every other frame is within {config.min_interval} "
            "frames of a better-scored key frame (the paper's selection; fill_to_count keeps room for all)"
        )
    return Keyframes(str(video), fps, len(scores), frames, [scores[index] for index in frames], note)


def read_frames(video: str | Path, frames: Sequence[int]) -> list[Image.Image]:
    """Full-resolution RGB images of ``frames`` (decoding-order indices), in the order given.

    Decodes from the start and stops after the last wanted frame; only wanted frames are converted to RGB.

    Raises:
        FileNotFoundError: ``video`` is not a file.
        VideoDecodeError: ``video`` cannot be decoded, or has fewer frames than asked for.
    """
    wanted = set(frames)
    images: dict[int, Image.Image] = {}
    if wanted:
        with _open_video(video) as (container, stream):
            for index, frame in enumerate(_decode(video, container, stream)):
                if index in wanted:
                    images[index] = frame.to_image()
                    if len(images) == len(wanted):
                        break
    missing = sorted(wanted - images.keys())
    if missing:
        raise VideoDecodeError(video, f"has no frame(s) {missing}")
    return [images[index] for index in frames]


def find_videos(root: str | Path, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[Path]:
    """Every file under ``root`` (recursively) whose suffix is in ``extensions`` (case-insensitive), sorted."""
    suffixes = {extension.lower() for extension in extensions}
    return sorted(path for path in Path(root).rglob("*") if path.is_file() and path.suffix.lower() in suffixes)


@dataclass
class KeyframeExtractionConfig(ExecutorOptions):
    """Which videos to cut into key frames, where to write them and how to choose them (``wm-hub keyframes``).

    With an executor (the :class:`~wm_hub.bootstrap.executors.ExecutorOptions`), the videos are spread over datatrove
    tasks (:mod:`wm_hub.bootstrap.keyframe_pipeline`; the same output, finished tasks skipped on a rerun); without
    one they are done one after the other in this process.

    Args:
        out: Output folder (keyframes_config.json, keyframes.jsonl, skipped.jsonl, the images); rerun with the same
            settings to resume.
        videos: Video files and folders of videos (searched recursively for :data:`VIDEO_EXTENSIONS`).
        num_keyframes: Key frames per video, ``K_f`` (paper: 6).
        min_interval: Least distance in frames between two key frames, ``I_f`` (paper: 20).
        max_side: Longer side in pixels of the frames the flow runs on; 0 for full resolution.
        fill_to_count: Give every video long enough ``num_keyframes`` frames (wm-hub's fixed-count variant); by
            default the paper's selection, which keeps the best-scored frames and may give fewer.

    Attributes:
        selection: The :class:`KeyframeConfig` of these settings (``max_side`` 0 becomes ``None``).
    """

    out: str = field(metadata={"help": "output folder (keyframes.jsonl, skipped.jsonl, images)"})
    videos: list[str] = field(
        default_factory=list,
        metadata={"help": "video files and folders of videos, also given as VIDEO_OR_DIR (default: none)"},
    )
    num_keyframes: int = field(default=6, metadata={"help": "key frames per video"})
    min_interval: int = field(default=20, metadata={"help": "least frames between key frames"})
    max_side: int = field(
        default=160,
        metadata={"help": "longer side in pixels of the frames the flow runs on; 0 for full resolution"},
    )
    fill_to_count: bool = False
    selection: KeyframeConfig = field(init=False, repr=False)

    def __post_init__(self):
        if isinstance(self.videos, str):  # a recipe's `videos: a.mp4` would be read one character at a time
            raise ValueError(f"videos: a list is needed, got the string {self.videos!r} (write [{self.videos!r}])")
        if not self.videos:
            raise ValueError("no video given: name video files or folders of videos (VIDEO_OR_DIR)")
        for index, video in enumerate(self.videos):  # a recipe's list may hold a number, a null or a blank string
            if not isinstance(video, str) or not video.strip():
                raise ValueError(f"videos[{index}]: a video file or folder path is needed, got {video!r}")
        super().__post_init__()
        self.selection = KeyframeConfig(
            self.num_keyframes, self.min_interval, self.max_side or None, fill_to_count=self.fill_to_count
        )


def _video_folders(names: Sequence[str]) -> dict[str, Path]:
    """Each video of ``names`` (files and folders searched recursively), absolute, to its image folder under OUT."""
    videos: dict[str, Path] = {}
    for name in names:
        path = Path(name)
        if path.is_dir():
            videos.update(
                (str(video.resolve()), video.relative_to(path).with_suffix("")) for video in find_videos(path)
            )
        elif path.is_file():
            videos[str(path.resolve())] = Path(path.stem)
        else:
            raise FileNotFoundError(f"{name}: no such file or folder")
    if not videos:
        raise ValueError(f"no video files ({' '.join(VIDEO_EXTENSIONS)}) in {' '.join(names)}")
    return videos


SELECTION_SETTINGS = ("num_keyframes", "min_interval", "max_side", "fill_to_count")
# A folder started before the setting existed was filled to the count (the selection of those versions).
RECORDED_BEFORE_FILL_TO_COUNT = {"fill_to_count": True}


SETTINGS_FILE = "keyframes_config.json"  # the selection settings a resume must keep


def _check_settings(out: Path, settings: dict[str, Any]) -> bool:
    """Refuse to resume ``out`` when it was started with other selection settings.

    Returns:
        Whether ``out`` has recorded settings (``False``: a new folder, where the caller records them once its other
        checks pass, so that a refused run does not tie the folder to its settings).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder for the key frames")
    recorded = out / SETTINGS_FILE
    if recorded.is_file():
        before = {**RECORDED_BEFORE_FILL_TO_COUNT, **read_json_object(recorded)}
        for name, value in settings.items():
            if before.get(name) != value:
                flag = "--" + name.replace("_", "-")
                raise ValueError(
                    f"{out} was started with {flag} {before.get(name)!r}, now {value!r}: resume with the same "
                    "settings, or choose another --out"
                )
        return True
    return False


def process_video(
    video: str, folder: Path, out: Path, selection: KeyframeConfig
) -> tuple[dict[str, Any] | None, str | None]:
    """One video's key frames saved as ``out/folder/frame_<index>.png``: its index row, or why it was skipped.

    Returns:
        ``(row, None)`` (the :class:`Keyframes` fields and the images' paths under ``out``), or ``(None, reason)``
        for a video that cannot be decoded.
    """
    try:
        keyframes = find_keyframes(video, selection)
        images = read_frames(video, keyframes.frames)
    except VideoDecodeError as error:
        return None, error.reason
    paths = []
    for frame, image in zip(keyframes.frames, images):
        path = out / folder / f"frame_{frame:06d}.png"
        write_with(path, lambda tmp, image=image: image.save(tmp, format="PNG"))
        paths.append(str(path.relative_to(out)))
    return {**keyframes.to_dict(), "images": paths}, None


VideoRunner = Callable[[list[tuple[str, str]]], tuple[list[dict[str, Any]], list[dict[str, str]]]]


def extract_keyframes(config: KeyframeExtractionConfig, runner: VideoRunner | None = None) -> dict[str, Any]:
    """Find the key frames of every video and save them as images under ``config.out`` (see the module docstring).

    Videos already in the folder's ``keyframes.jsonl`` are not redone; videos that cannot be decoded are skipped and
    listed in ``skipped.jsonl``.

    Args:
        config: The videos, the output folder and the selection settings.
        runner: Does the videos still to do, given as ``(video, image folder)``, and returns their index rows and
            skipped videos in that order (:func:`wm_hub.bootstrap.keyframe_pipeline.keyframe_runner`: datatrove
            tasks over several processes). ``None``: one after the other in this process, each row appended as it
            is done.

    Returns:
        ``keyframes`` (the index), ``videos`` (videos done now), ``already_done``, ``redone_missing_images``
        (videos of the index whose images were deleted since, done again), ``skipped`` (videos that could
        not be decoded), ``skipped_videos`` (the file listing them), ``skipped_rows`` (their ``video`` and
        ``reason``), ``without_pair`` and ``without_pair_videos`` (the videos of the index with fewer than 2 key
        frames: too short or too still to give a pair to label).
        While a scheduler's tasks are not all done (:class:`TasksPending`), nothing is merged and the
        summary is ``pending`` (the tasks' status), ``videos`` (to do) and ``already_done``.

    Raises:
        FileNotFoundError: A video or folder given does not exist.
        ValueError: No video found, ``out`` is a file or was started with other settings, its index is not one this
            function wrote, two videos would write the same image folder, or none of the videos could be decoded.
    """
    videos = _video_folders(config.videos)
    out = Path(config.out)
    settings = {name: getattr(config.selection, name) for name in SELECTION_SETTINGS}
    recorded = _check_settings(out, settings)
    index = out / "keyframes.jsonl"
    try:
        logged = read_jsonl_log(index)  # a torn last row is redone
        intact = [row for row in logged if all((out / image).is_file() for image in row["images"])]
        done = {row["video"]: Path(row["images"][0]).parent for row in intact}
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ValueError(f"{index}: not a key-frame index wm-hub keyframes wrote ({error})") from None
    if len(intact) < len(logged):  # images deleted since: those videos are done again
        write_jsonl(index, intact)
    owners = {folder: video for video, folder in done.items()}
    for video, folder in videos.items():
        if owners.setdefault(folder, video) != video:
            raise ValueError(f"{owners[folder]} and {video} would both write {out / folder}; use two --out")
    if not recorded:
        ours = (out / "keyframes.jsonl", out / "skipped.jsonl")  # a run that recorded no settings left only these
        visible = out.is_dir() and any(not path.name.startswith(".") for path in out.iterdir())  # .gitkeep is fine
        if visible and not any(path.is_file() for path in ours):
            raise ValueError(
                f"--out {out} holds files and no key frames ({SETTINGS_FILE}): choose a new or empty folder, or the "
                "folder of the run to resume"
            )
        write_json(out / SETTINGS_FILE, settings)
    todo = [(video, folder) for video, folder in videos.items() if video not in done]
    skipped: list[dict[str, str]] = []
    if runner is not None:
        try:
            new_rows, skipped = runner([(video, str(folder)) for video, folder in todo]) if todo else ([], [])
        except TasksPending as pending:
            return {"pending": pending.status, "videos": len(todo), "already_done": len(videos) - len(todo)}
        write_jsonl(index, [*read_jsonl_log(index), *new_rows])  # the whole index at once: never half merged
    else:
        with index.open("a") as rows, tqdm(todo, desc="key frames", unit="video") as progress:
            for video, folder in progress:
                row, reason = process_video(video, folder, out, config.selection)
                if row is None:
                    skipped.append({"video": video, "reason": reason})
                    progress.set_postfix(skipped=len(skipped))
                    continue
                rows.write(json.dumps(row) + "\n")  # images first, then the row
                rows.flush()
    skipped_path = write_jsonl(out / "skipped.jsonl", skipped)
    if skipped and len(skipped) == len(videos):  # no key frame at all: not a success
        if not recorded:  # nothing was kept: the folder is not tied to these settings
            (out / SETTINGS_FILE).unlink()
        listing = "; ".join(f"{row['video']} ({row['reason']})" for row in skipped)
        raise ValueError(f"none of the {len(todo)} videos could be decoded ({skipped_path}): {listing}")
    # too short or too still for two key frames: kept in the index, but no pair to label
    without_pair = [row["video"] for row in read_jsonl_log(index) if len(row["frames"]) < 2]
    return {
        "keyframes": str(index),
        "videos": len(todo) - len(skipped),
        "already_done": len(videos) - len(todo),
        "redone_missing_images": len(logged) - len(intact),
        "skipped": len(skipped),
        "skipped_videos": str(skipped_path),
        "without_pair": len(without_pair),
        "skipped_rows": skipped,
        "without_pair_videos": without_pair,
    }
