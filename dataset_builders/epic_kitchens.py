"""EPIC-KITCHENS-100 action segments as wm-hub triplets: first and last frame of each narrated segment.

``data_dir`` is laid out like the EPIC-KITCHENS-100 download:

- action annotations ``EPIC_100_train.csv`` and/or ``EPIC_100_validation.csv`` (from
  epic-kitchens-100-annotations; in ``data_dir`` or in ``annotations_dir``), one split per file present, with at
  least the columns narration_id, participant_id, video_id, start_frame, stop_frame, narration and verb;
- per video, either extracted RGB frames ``<participant>/rgb_frames/<video_id>/frame_<10 digits>.jpg`` (used as
  they are) or the video ``<participant>/videos/<video_id>.MP4`` (decoded with PyAV; the two frames are stored as
  JPEG, quality 95). The frames folder wins when both exist.

Frame numbers count from 1, as in the frame file names: frame ``n`` is the video's ``n``-th decoded frame.
Each segment gives one triplet: id = narration_id, action = narration, action_class = verb, origin
``epic_kitchens``, video = video_id, frames = [start_frame, stop_frame].
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import datasets
from datasets.utils.tqdm import tqdm

from wm_hub.data.pictures import image_problem
from wm_hub.data.reporting_builder import (
    BadFile,
    BuildReport,
    ReportingBuilder,
    SplitReport,
    TripletBuilderConfig,
)
from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet

ORIGIN = "epic_kitchens"
ANNOTATION_FILES = {"train": "EPIC_100_train.csv", "validation": "EPIC_100_validation.csv"}
COLUMNS = ("narration_id", "participant_id", "video_id", "start_frame", "stop_frame", "narration", "verb")
JPEG_QUALITY = 95

_CITATION = """@article{damen2022rescaling,
  title={Rescaling Egocentric Vision: Collection, Pipeline and Challenges for EPIC-KITCHENS-100},
  author={Damen, Dima and Doughty, Hazel and Farinella, Giovanni Maria and Furnari, Antonino and Ma, Jian and
          Kazakos, Evangelos and Moltisanti, Davide and Munro, Jonathan and Perrett, Toby and Price, Will and
          Wray, Michael},
  journal={International Journal of Computer Vision},
  year={2022}
}"""


@dataclass
class EpicKitchensConfig(TripletBuilderConfig):
    """EPIC-KITCHENS-100 options.

    Attributes:
        annotations_dir: Folder holding the ``EPIC_100_*.csv`` files (default: ``data_dir``).
    """

    annotations_dir: str | None = None


@dataclass(frozen=True)
class Segment:
    """One narrated action segment (one CSV row).

    Attributes:
        row: 0-based index of the row among the CSV's data rows.
    """

    row: int
    narration_id: str
    participant_id: str
    video_id: str
    start_frame: int
    stop_frame: int
    narration: str
    verb: str

    @property
    def frames_dir(self) -> str:
        """Folder of the video's extracted frames, relative to ``data_dir``."""
        return f"{self.participant_id}/rgb_frames/{self.video_id}"

    @property
    def video_file(self) -> str:
        """The video file, relative to ``data_dir``."""
        return f"{self.participant_id}/videos/{self.video_id}.MP4"

    def frame_file(self, number: int) -> str:
        """Extracted frame ``number``, relative to ``data_dir``."""
        return f"{self.frames_dir}/frame_{number:010d}.jpg"

    def triplet(self, source: bytes, target: bytes) -> dict[str, Any]:
        """The triplet row of this segment."""
        return make_triplet(
            self.narration_id,
            source,
            target,
            self.narration,
            ORIGIN,
            action_class=self.verb,
            video=self.video_id,
            frames=[self.start_frame, self.stop_frame],
        )


class EpicKitchensBuilder(ReportingBuilder):
    """EPIC-KITCHENS-100 segment triplets from local annotations and frames or videos (see the module docstring)."""

    BUILDER_CONFIG_CLASS = EpicKitchensConfig
    BUILDER_CONFIGS = [EpicKitchensConfig(name="default", description="First and last frame of each segment")]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="EPIC-KITCHENS-100 narrated action segments as (first frame, narration, last frame).",
            features=TRIPLET_FEATURES,
            homepage="https://epic-kitchens.github.io",
            license="cc-by-nc-4.0",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        data_dir = self._data_dir()
        annotations_dir = Path(self.config.annotations_dir) if self.config.annotations_dir else data_dir
        files = {split: annotations_dir / name for split, name in ANNOTATION_FILES.items()}
        files = {split: path for split, path in files.items() if path.is_file()}
        if not files:
            raise FileNotFoundError(f"No {' or '.join(ANNOTATION_FILES.values())} in {annotations_dir}")
        report = BuildReport(builder="epic_kitchens", config=self.config.name)
        video_frames: dict[str, int | str] = {}
        generators = []
        for split, path in files.items():
            segments = _read_segments(path)
            split_report = report.splits[split] = SplitReport(annotation_file=path.name, rows=len(segments))
            counts = split_report.counts(ORIGIN)
            kept = []
            for segment in tqdm(segments, desc=f"Checking {path.name}", unit=" rows"):
                counts.rows += 1
                if split_report.admit(ORIGIN, _bad_files(data_dir, split, segment, video_frames)):
                    kept.append(segment)
            generators.append(datasets.SplitGenerator(name=split, gen_kwargs={"data_dir": data_dir, "segments": kept}))
        self._accept_report(report)
        return generators

    def _generate_examples(self, data_dir: Path, segments: list[Segment]) -> Iterator[tuple[str, dict[str, Any]]]:
        by_video: dict[str, list[Segment]] = {}
        for segment in segments:
            by_video.setdefault(segment.video_id, []).append(segment)
        for video_segments in by_video.values():
            first = video_segments[0]
            if (data_dir / first.frames_dir).is_dir():
                for segment in video_segments:
                    source = (data_dir / segment.frame_file(segment.start_frame)).read_bytes()
                    target = (data_dir / segment.frame_file(segment.stop_frame)).read_bytes()
                    yield segment.narration_id, segment.triplet(source, target)
            else:
                yield from _decoded_examples(data_dir / first.video_file, video_segments)


def _read_segments(path: Path) -> list[Segment]:
    """The segments of an ``EPIC_100_*.csv`` file."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [column for column in COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing} (EPIC-KITCHENS-100 action annotations expected)")
        segments = []
        first_row: dict[str, int] = {}
        for index, row in enumerate(reader):
            blank = [column for column in COLUMNS if not (row.get(column) or "").strip()]
            if blank:  # a short row (csv fills None) or an empty cell: no id, action or class to build from
                raise ValueError(f"{path}: row {index}: blank or missing column(s) {blank}")
            numbers = {}
            for column in ("start_frame", "stop_frame"):
                try:
                    numbers[column] = int(row[column])
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{path}: row {index}, column {column}: not a frame number: {row[column]!r}"
                    ) from None
                if numbers[column] < 1:
                    raise ValueError(
                        f"{path}: row {index}, column {column}: frames are numbered from 1, got {row[column]}"
                    )
            if numbers["start_frame"] > numbers["stop_frame"]:  # equal: a one-frame segment ("look at")
                raise ValueError(
                    f"{path}: row {index}: start_frame {numbers['start_frame']} is after stop_frame "
                    f"{numbers['stop_frame']} (a segment's source frame comes first)"
                )
            if row["narration_id"] in first_row:
                raise ValueError(
                    f"{path}: rows {first_row[row['narration_id']]} and {index}: the same narration_id "
                    f"{row['narration_id']!r} (each segment's id must be unique)"
                )
            first_row[row["narration_id"]] = index
            segments.append(
                Segment(
                    row=index,
                    narration_id=row["narration_id"],
                    participant_id=row["participant_id"],
                    video_id=row["video_id"],
                    narration=row["narration"],
                    verb=row["verb"],
                    **numbers,
                )
            )
    return segments


def _bad_files(data_dir: Path, split: str, segment: Segment, video_frames: dict[str, int | str]) -> list[BadFile]:
    """The missing or unreadable files of ``segment`` (``video_frames`` caches each video's frame count)."""
    numbered = (("start_frame", segment.start_frame), ("stop_frame", segment.stop_frame))
    if (data_dir / segment.frames_dir).is_dir():
        return [
            BadFile(split, segment.row, segment.narration_id, column, path, problem)
            for column, number in numbered
            if (problem := image_problem(data_dir / (path := segment.frame_file(number))))
        ]
    if segment.video_file not in video_frames:
        video_frames[segment.video_file] = _frame_count(data_dir, segment)
    frames = video_frames[segment.video_file]
    if isinstance(frames, str):
        return [BadFile(split, segment.row, segment.narration_id, "video_id", segment.video_file, frames)]
    return [
        BadFile(
            split, segment.row, segment.narration_id, column, segment.video_file, f"no frame {number} (1..{frames})"
        )
        for column, number in numbered
        if not 1 <= number <= frames
    ]


def _frame_count(data_dir: Path, segment: Segment) -> int | str:
    """Frames in the segment's video, or why the video cannot be used."""
    path = data_dir / segment.video_file
    if not path.is_file():
        return f"no such file, and no {segment.frames_dir}/ folder"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream"
            stream = container.streams.video[0]
            return stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as error:
        return f"not a video PyAV can read ({error})"


def _decoded_examples(path: Path, segments: list[Segment]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Triplets of the segments of one video, decoding it once up to the last frame needed."""
    waiting: dict[int, list[tuple[Segment, str]]] = {}
    for segment in segments:
        waiting.setdefault(segment.start_frame, []).append((segment, "source"))
        waiting.setdefault(segment.stop_frame, []).append((segment, "target"))
    images: dict[str, dict[str, bytes]] = {}
    for number, jpeg in _decoded_frames(path, set(waiting)):
        for segment, role in waiting.pop(number):
            pair = images.setdefault(segment.narration_id, {})
            pair[role] = jpeg
            if len(pair) == 2:
                del images[segment.narration_id]
                yield segment.narration_id, segment.triplet(pair["source"], pair["target"])
    if waiting:
        raise ValueError(f"{path}: the video ended before frame(s) {sorted(waiting)}")


def _decoded_frames(path: Path, numbers: set[int]) -> Iterator[tuple[int, bytes]]:
    """``(number, JPEG bytes)`` of the wanted frames (1-based), in order."""
    last = max(numbers)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for number, frame in enumerate(container.decode(stream), start=1):
            if number in numbers:
                buffer = io.BytesIO()
                frame.to_image().save(buffer, format="JPEG", quality=JPEG_QUALITY)
                yield number, buffer.getvalue()
            if number == last:
                return
