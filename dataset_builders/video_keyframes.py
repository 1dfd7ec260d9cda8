"""Unlabelled key-frame pairs of videos as wm-hub triplets (paper section 3.2), for the IDM to annotate.

``data_dir`` holds videos in class folders, ``<data_dir>/<class>/<video>.<ext>`` (the layout of UCF-101,
Kinetics-700 and Moments-in-Time; deeper folders count towards their top-level class). Each video's motion key
frames (:func:`wm_hub.bootstrap.keyframes.find_keyframes`: top ``num_keyframes`` by optical-flow magnitude, at
least ``min_interval`` frames apart) give one triplet per consecutive pair ``(i, j)``: source frame ``i``, target
frame ``j`` (full-resolution PNG), empty ``action``, ``action_class`` = the class folder, ``video`` = the path
under ``data_dir``, ``frames = [i, j]``, ``origin = <origin_prefix>/<class>``, id ``<video>:<i>-<j>``.

A video that cannot be decoded (truncated, corrupt, not a video) or gives fewer than 2 key frames (too short or
still: no pair) fails the build with one error naming it, or with ``skip_missing=True`` (``wm-hub data build
--skip-missing``) is skipped: counted and listed in the build report (``build_report.json``, where a row is a
video), and each worker logs one warning with their names. Video files
directly in ``data_dir`` (no class folder) are left out with a warning. ``download_and_prepare(num_proc=N)`` shares
the videos among N processes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import datasets

from wm_hub.bootstrap.keyframes import (
    VIDEO_EXTENSIONS,
    KeyframeConfig,
    VideoDecodeError,
    find_keyframes,
    find_videos,
    read_frames,
)
from wm_hub.data.reporting_builder import (
    REPORT_FILENAME,
    BadFile,
    BuildReport,
    OriginCounts,
    ReportingBuilder,
    SplitReport,
    TripletBuilderConfig,
)
from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet

logger = datasets.logging.get_logger(__name__)
SKIP_LOG = "skipped_videos.jsonl"  # written by the generating processes, read into the build report at the end


@dataclass
class VideoKeyframesConfig(TripletBuilderConfig):
    """Key-frame selection and file discovery (and ``skip_missing``: skip undecodable videos instead of failing).

    Attributes:
        num_keyframes: Key frames per video, ``K_f`` (paper: 6); a video gives at most ``num_keyframes - 1`` pairs.
        min_interval: Least distance in frames between two key frames, ``I_f`` (paper: 20).
        max_side: Longer side in pixels of the frames the optical flow runs on (``None``: full resolution); the
            triplet images are always full resolution.
        fill_to_count: Give every video long enough ``num_keyframes`` frames (wm-hub's fixed-count variant; by
            default the paper's selection, which may give fewer).
        extensions: Video file suffixes to read (case-insensitive).
        origin_prefix: ``origin`` is ``<origin_prefix>/<class>``; name the source, e.g. ``ucf101``.
    """

    num_keyframes: int = 6
    min_interval: int = 20
    max_side: int | None = 160
    fill_to_count: bool = False
    extensions: Sequence[str] = VIDEO_EXTENSIONS
    origin_prefix: str = "video_keyframes"


class VideoKeyframesBuilder(ReportingBuilder):
    """Consecutive key-frame pairs of class-folder videos as unlabelled triplets (see the module docstring)."""

    BUILDER_CONFIG_CLASS = VideoKeyframesConfig

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="Consecutive motion key-frame pairs of unlabelled videos (optical-flow top-K frames at "
            "least I frames apart), as (source, empty action, target) triplets for IDM annotation.",
            features=TRIPLET_FEATURES,
        )

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        if self.config.data_dir is None:
            raise ValueError("VideoKeyframesBuilder needs data_dir= (a folder of <class>/<video> files)")
        root = Path(self.config.data_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"data_dir {root}: no such folder")
        videos = [path.relative_to(root) for path in find_videos(root, self.config.extensions)]
        classless = [str(video) for video in videos if len(video.parts) == 1]
        if classless:
            logger.warning(
                "Left out %d video(s) not in a class folder of %s: %s", len(classless), root, ", ".join(classless)
            )
        videos = [video.as_posix() for video in videos if len(video.parts) > 1]
        if not videos:
            raise ValueError(f"No videos ({', '.join(self.config.extensions)}) in class folders of {root}")
        self._videos = videos
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"root": str(root), "videos": videos})]

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        log = Path(self._output_dir) / SKIP_LOG  # the temporary folder: a failed build leaves nothing
        log.unlink(missing_ok=True)
        # not ReportingBuilder's, which reads a report checked before generating: videos fail while generating
        datasets.GeneratorBasedBuilder._download_and_prepare(
            self, dl_manager, verification_mode, **prepare_split_kwargs
        )
        skipped = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
        log.unlink(missing_ok=True)
        self._accept_report(self._video_report(skipped))  # no triplet left is an error, skipping or not
        self._report.write(Path(self._output_dir) / REPORT_FILENAME)

    def _video_report(self, skipped: list[dict[str, Any]]) -> BuildReport:
        """The build report: one row per video found in a class folder, the undecodable ones skipped."""

        def origin(video: str) -> str:
            return f"{self.config.origin_prefix}/{video.split('/')[0]}"

        found, lost = Counter(map(origin, self._videos)), Counter(origin(row["video"]) for row in skipped)
        report = SplitReport(annotation_file=str(self.config.data_dir), rows=len(self._videos))
        for name, count in found.items():
            report.origins[name] = OriginCounts(rows=count, examples=count - lost[name], skipped=lost[name])
        index = {video: row for row, video in enumerate(self._videos)}
        report.skipped = [
            BadFile("train", index[row["video"]], row["video"], "video", row["video"], row["reason"])
            for row in sorted(skipped, key=lambda row: index[row["video"]])
        ]
        return BuildReport(builder="video_keyframes", config=self.config.name, splits={"train": report})

    def _generate_examples(self, root: str, videos: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        config: VideoKeyframesConfig = self.config
        keyframe_config = KeyframeConfig(
            config.num_keyframes, config.min_interval, config.max_side, fill_to_count=config.fill_to_count
        )
        skipped: dict[str, list[str]] = {"could not be decoded": [], "gave fewer than 2 key frames (no pair)": []}
        for video in videos:
            path = Path(root) / video
            try:
                frames = find_keyframes(path, keyframe_config).frames
                images = read_frames(path, frames) if len(frames) > 1 else []
                why, reason = "gave fewer than 2 key frames (no pair)", f"{len(frames)} key frame(s): no pair"
            except VideoDecodeError as error:
                frames, images, why, reason = [], [], "could not be decoded", error.reason
            if len(frames) < 2:  # no triplet from this video: a skip, not an example
                if not config.skip_missing:
                    problem = f"cannot be decoded ({reason})" if why == "could not be decoded" else reason
                    raise ValueError(
                        f"{path}: {problem}; fix or remove it, or skip such videos with "
                        "skip_missing=True (wm-hub data build --skip-missing)"
                    )
                skipped[why].append(f"{video} ({reason})")
                with (Path(self._output_dir) / SKIP_LOG).open("a", encoding="utf-8") as log:
                    log.write(json.dumps({"video": video, "reason": reason}) + "\n")
                continue
            action_class = video.split("/")[0]
            for (source_frame, target_frame), (source, target) in zip(pairwise(frames), pairwise(images)):
                id = f"{video}:{source_frame}-{target_frame}"
                yield (
                    id,
                    make_triplet(
                        id,
                        source,
                        target,
                        "",
                        f"{config.origin_prefix}/{action_class}",
                        action_class=action_class,
                        video=video,
                        frames=[source_frame, target_frame],
                    ),
                )
        for why, names in skipped.items():
            if names:
                logger.warning("Skipped %d of %d video(s) that %s: %s", len(names), len(videos), why, "; ".join(names))
