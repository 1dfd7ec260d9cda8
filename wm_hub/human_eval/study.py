"""Building a blind best/worst study (paper Section 4.3.1, Appendix I): rows, anonymised outputs, the key.

A study is a folder:

```
STUDY/study.json           what annotators see: per row the instruction, the input and the outputs, "Model 1..N"
STUDY/key.json             kept apart (never served): the model behind each displayed output, seed, sources
STUDY/images/<row>/input.<ext>        the AURORA source image, copied as it is
STUDY/images/<row>/output-<k>.png     the k-th displayed output, re-encoded as PNG
STUDY/answers.sqlite       written by ``wm-hub human-eval serve`` (see :mod:`wm_hub.human_eval.storage`)
```

Rows are sampled per subset with a seeded RNG, the row order is shuffled, and the order of the models is shuffled
independently for every row, so neither a row's position nor an output's position tells which model made it.
Outputs are re-encoded as PNG so that their file format or metadata cannot give a model away either.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from wm_hub.atomic_io import write_json
from wm_hub.evaluation import split_names

STUDY_FILE = "study.json"
KEY_FILE = "key.json"
IMAGES_DIR = "images"
ANSWERS_FILE = "answers.sqlite"
STUDY_VERSION = 1

INSTRUCTIONS = (
    "Select the BEST/WORST candidate which satisfies/contradicts with the following criteria as many as possible. "
    "If none of them satisfies the criteria, please prioritise in this order: "
    "Criterion 1: Realism > Criterion 2: Instruction Followed > Criterion 3: Over-editing."
)
"""The paper's instructions to annotators (Figure 12)."""

CRITERIA = (
    {
        "name": "Criterion 1: Realism",
        "good": "The generated image looks like a real photo with natural textures and lighting, mostly follows the "
        "scene in the input image.",
        "bad": "Artifacts, distortions, or unnatural results.",
    },
    {
        "name": "Criterion 2: Instruction Followed",
        "good": 'The edit reflects the instruction clearly (e.g., "add a tree" results in a tree in the scene).',
        "bad": "The edit misses the point or wrongly changes something irrelevant.",
    },
    {
        "name": "Criterion 3: Over-editing",
        "good": "The edit is focused and minimal, changing only what was requested.",
        "bad": "The entire image is edited correctly, but more than what was requested is changed (e.g., adding or "
        "altering extra objects).",
    },
)
"""The paper's three criteria (Figure 12), in priority order."""


@dataclass
class StudyConfig:
    """What ``wm-hub human-eval build`` samples and from where.

    Args:
        predictions: The models, ``NAME=DIR`` each: a model name (shown to nobody but the scorer) and its
            prediction folder (``DIR/<row id>.<png|jpg|jpeg|webp>``, as written by ``wm-hub eval aurora``). At
            least two models; the first is the default reference of scoring.
        data_dir: AURORA checkout (``test.json`` and ``data/``).
        out: The study folder to write (must not exist or be empty).
        per_subset: Rows sampled from each subset (the paper: 5).
        seed: Seed of the row sampling, the row order and every row's model order.
        subsets: AURORA-BENCH subsets, comma-separated or one per value (default: the paper's five).
        skip_missing: Leave out rows whose AURORA images are missing instead of failing.
        title: Shown at the top of every page.

    Attributes:
        models: Model name -> prediction folder, read from ``predictions`` in their order.
    """

    predictions: list[str] = field(metadata={"metavar": "NAME=DIR"})
    data_dir: str | Path
    out: str | Path
    per_subset: int = 5
    seed: int = 0
    subsets: list[str] | None = None
    skip_missing: bool = False
    title: str = "Which predicted next observation is best, which is worst?"
    models: dict[str, Path] = field(init=False)

    def __post_init__(self) -> None:
        self.models = {}
        for entry in self.predictions:
            name, sep, folder = entry.partition("=")
            if not sep or not name.strip() or not folder:
                raise ValueError(f"--predictions takes NAME=DIR, got {entry!r}")
            if name.strip() in self.models:
                raise ValueError(f"model name {name.strip()!r} given twice in --predictions")
            self.models[name.strip()] = Path(folder)
        if len(self.models) < 2:
            raise ValueError(f"a study compares at least 2 models, got {len(self.models)}: {list(self.models)}")
        if self.per_subset < 1:
            raise ValueError(f"per_subset must be at least 1, got {self.per_subset}")
        if self.subsets is not None:
            self.subsets = split_names(self.subsets)
        names_of: dict[Path, list[str]] = {}
        for name, path in self.models.items():
            names_of.setdefault(path.resolve(), []).append(name)
        shared = [f"{' and '.join(names)} ({path})" for path, names in names_of.items() if len(names) > 1]
        if shared:
            raise ValueError(
                "models given the same prediction folder would be one model shown twice: " + "; ".join(shared)
            )


@dataclass
class StudyRow:
    """One row as annotators see it (``study.json``).

    Attributes:
        row: The row's key in the study (``r001``...), used in links and answers.
        id: The AURORA-BENCH row id (``<subset>/<index in test.json>``).
        subset: The AURORA-BENCH subset.
        instruction: The action / edit instruction.
        input: The source image, relative to the study folder.
        outputs: The displayed outputs, ``outputs[k - 1]`` is "Model k", relative to the study folder.
    """

    row: str
    id: str
    subset: str
    instruction: str
    input: str
    outputs: list[str]


@dataclass
class Study:
    """A study as loaded for serving: only what annotators may see.

    Attributes:
        path: The study folder.
        title: Page title.
        rows: Rows in the order they are shown.
        fingerprint: SHA-256 of ``study.json`` (answers databases are tied to one study).
        instructions: Instructions shown to annotators.
        criteria: The three criteria (``name``, ``good``, ``bad``).
    """

    path: Path
    title: str
    rows: list[StudyRow]
    fingerprint: str
    instructions: str = INSTRUCTIONS
    criteria: list[dict[str, str]] = field(default_factory=lambda: [dict(c) for c in CRITERIA])

    @property
    def num_outputs(self) -> int:
        """Outputs shown per row (the number of models)."""
        return len(self.rows[0].outputs)

    def row(self, key: str) -> StudyRow | None:
        """The row called ``key``, if any."""
        return next((row for row in self.rows if row.row == key), None)


@dataclass
class StudyKey:
    """The private key of a study (``key.json``): which model is behind each displayed output.

    Attributes:
        models: Model names in the order they were given (the first is the default reference of scoring).
        subsets: Subsets in the order they were sampled (rows of the score table).
        orders: Row key -> model names by displayed position (``orders[row][k - 1]`` is "Model k").
        row_subsets: Row key -> subset.
        row_ids: Row key -> AURORA-BENCH row id.
        seed: Seed the study was built with.
        predictions: Model name -> prediction folder.
        data_dir: AURORA checkout.
        skipped: AURORA-BENCH rows left out with ``skip_missing`` (missing or unreadable images: split, row, id,
            field, path and reason of each file).
    """

    models: list[str]
    subsets: list[str]
    orders: dict[str, list[str]]
    row_subsets: dict[str, str]
    row_ids: dict[str, str]
    seed: int
    predictions: dict[str, str]
    data_dir: str
    skipped: list[dict[str, Any]] = field(default_factory=list)


def load_study(path: str | Path) -> Study:
    """Read ``study.json`` of a study folder (never the key).

    Raises:
        FileNotFoundError: ``path`` has no ``study.json``.
        ValueError: ``study.json`` is not a study (the message names the file and field).
    """
    file = Path(path) / STUDY_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such file; build the study with `wm-hub human-eval build`")
    text = file.read_bytes()
    try:
        payload = json.loads(text)
        rows = [StudyRow(**row) for row in payload["rows"]]
        title = payload["title"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{file}: not a wm-hub study file ({type(error).__name__}: {error})") from None
    if not rows or len({len(row.outputs) for row in rows}) != 1:
        raise ValueError(f"{file}: field 'rows' must be non-empty, with the same number of outputs in every row")
    return Study(Path(path), title, rows, hashlib.sha256(text).hexdigest())


def load_key(path: str | Path) -> StudyKey:
    """Read ``key.json`` of a study folder.

    Raises:
        FileNotFoundError: No ``key.json`` (a study served without its key must be scored where the key is).
        ValueError: Not a key file.
    """
    file = Path(path) / KEY_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such file (the key stays with whoever built the study)")
    try:
        return StudyKey(**json.loads(file.read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{file}: not a wm-hub study key ({type(error).__name__}: {error})") from None


def _sample_rows(ids: Sequence[str], subsets: Sequence[str], config: StudyConfig) -> tuple[list[int], list[str]]:
    """Indices of the sampled rows (row order shuffled) and the subsets in their sampling order."""
    rng = random.Random(config.seed)
    by_subset: dict[str, list[int]] = {}
    for index, subset in enumerate(subsets):
        by_subset.setdefault(subset, []).append(index)
    order = list(config.subsets) if config.subsets else list(by_subset)
    short = [
        f"{name} has {len(by_subset.get(name, []))}"
        for name in order
        if len(by_subset.get(name, [])) < config.per_subset
    ]
    if short:
        raise ValueError(
            f"--per-subset {config.per_subset} needs that many usable rows per subset: {', '.join(short)}"
        )
    chosen = [index for name in order for index in sorted(rng.sample(by_subset[name], config.per_subset))]
    rng.shuffle(chosen)
    return chosen, order


def build_study(config: StudyConfig) -> Path:
    """Sample AURORA-BENCH rows, anonymise and shuffle the models' outputs per row, and write the study folder.

    The folder is written under a temporary name beside ``config.out`` and renamed at the end.

    Args:
        config: What to sample and where to write it.

    Returns:
        The study folder.

    Raises:
        FileExistsError: ``config.out`` exists and is not empty.
        FileNotFoundError: A prediction folder is missing, a model has no prediction for a sampled row (every
            missing model/row is named), or the AURORA checkout is missing.
        ValueError: A prediction image cannot be read (model, row and file named), a subset has too few rows,
            or AURORA rows are bad (the data layer's errors).
    """
    from wm_hub.evaluation.aurora import prediction_file
    from wm_hub.evaluation.triplet_sources import load_eval_triplets

    out = Path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not an empty folder; choose a new study folder")
    missing = [f"{name}: {path}" for name, path in config.models.items() if not path.is_dir()]
    if missing:
        raise FileNotFoundError("prediction folder(s) not found: " + "; ".join(missing))
    data_dir = Path(config.data_dir)
    if not (data_dir / "test.json").is_file():
        raise FileNotFoundError(f"{data_dir}: no test.json (--data-dir must be an AURORA checkout)")
    triplets = load_eval_triplets(
        str(data_dir),
        subsets=config.subsets or None,
        skip_missing=config.skip_missing,
    )
    dataset = triplets.dataset
    ids, actions = dataset["id"], dataset["action"]
    chosen, subset_order = _sample_rows(ids, triplets.subsets(), config)
    subsets = triplets.subsets()
    models, folders = list(config.models), config.models

    missing = []
    files: dict[tuple[str, str], Path] = {}
    for index in chosen:
        for name in models:
            path = prediction_file(folders[name], ids[index])
            if path is None:
                missing.append(f"model {name}, row {ids[index]}: expected {folders[name] / ids[index]}.png")
            else:
                files[name, ids[index]] = path
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} prediction image(s) missing for the sampled rows (also .jpg/.jpeg/.webp accepted):\n  "
            + "\n  ".join(missing)
        )

    rng = random.Random(f"{config.seed}-model-order")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows, orders = [], {}
        for number, index in enumerate(tqdm(chosen, desc="Building study", unit=" rows"), start=1):
            key, row_id = f"r{number:03d}", ids[index]
            order = list(models)
            rng.shuffle(order)
            orders[key] = order
            folder = tmp / IMAGES_DIR / key
            folder.mkdir(parents=True)
            source = data_dir / triplets.image_paths[row_id][0]
            input_name = f"input{source.suffix.lower()}"
            shutil.copyfile(source, folder / input_name)
            outputs = []
            for position, name in enumerate(order, start=1):
                path = files[name, row_id]
                try:
                    with Image.open(path) as image:
                        image.convert("RGB").save(folder / f"output-{position}.png", format="PNG")
                except (OSError, UnidentifiedImageError) as error:
                    raise ValueError(f"model {name}, row {row_id}: cannot read prediction {path} ({error})") from None
                outputs.append(f"{IMAGES_DIR}/{key}/output-{position}.png")
            rows.append(
                StudyRow(key, row_id, subsets[index], actions[index], f"{IMAGES_DIR}/{key}/{input_name}", outputs)
            )
        study = {"version": STUDY_VERSION, "title": config.title, "rows": [asdict(r) for r in rows]}
        write_json(tmp / STUDY_FILE, study, ensure_ascii=False)
        key = StudyKey(
            models=models,
            subsets=subset_order,
            orders=orders,
            row_subsets={row.row: row.subset for row in rows},
            row_ids={row.row: row.id for row in rows},
            seed=config.seed,
            predictions={name: str(folder.resolve()) for name, folder in folders.items()},
            data_dir=str(data_dir.resolve()),
            skipped=triplets.skipped,
        )
        write_json(tmp / KEY_FILE, asdict(key), ensure_ascii=False)
        tmp.chmod(0o755)  # mkdtemp makes it private; a served study (Docker, Space) must be readable
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
