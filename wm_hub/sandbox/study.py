"""The sandbox study: the paper's claims measured end to end in the shapes world, from the shipped sandbox base.

``wm-hub sandbox study --out study`` (``make study``) trains every model it needs through the demo's recipes
(:func:`~wm_hub.sandbox.finetune.fine_tune`, in process) and measures, on held-out triplets of the sandbox world:

1. ``asymmetry``: IDM exact match and FDM accuracy against training steps (checkpoints of one constant-rate run
   each, same base, same data, same budget) and against the number of labelled triplets (paper sections 1-2);
2. ``probe``: the trajectory-preference probe (:mod:`wm_hub.evaluation.probe`) on the base, the IDM and the FDM,
   with the paper's negatives; the counterfactual one is another valid action of the same kind on the same source;
3. ``table4``: FT (labelled, standard loss), w/o synthetic data, w/o loss weighting and the full method (labelled +
   IDM-labelled video key-frame pairs + recognition weighting), over seeds, with paired Wilcoxon tests over the
   held-out triplets (paper Table 4);
4. ``scaling``: the FDM against K of Algorithm 1 (stratified top K, random K, all pairs) and against the accuracy
   of the labelling IDM (checkpoints of the IDM run);
5. ``best_of_n``: best-of-N with the IDM verifier against an oracle (the candidate with most cells right) and a
   random choice (the mean over candidates), N up to ``max(best_of)`` (paper Figure 4);
6. ``rollouts``: 1..L chained actions, greedy, sampled and verified at each step, against copying the source;
7. ``grpo``: GRPO from the verifier (SWIRL's follow-up, :mod:`wm_hub.training.grpo`): each seed's full-method FDM
   trained on the labelling IDM's reward, and the labelling IDM on that FDM's reward, against the SFT models and
   against SFT given the same wall time (more steps of the same recipe from the base); the FDM greedy, sampled once
   and best-of-N with the IDM verifier.

Each training run is a folder under ``OUT/runs`` and each measurement a JSON file beside it: a rerun skips what is
done (a run interrupted while training restarts). ``OUT/results.json``, ``OUT/report.md`` and PNG plots are written
at the end. The figures are fractions in [0, 1] (win rates too).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file
from scipy.stats import wilcoxon
from transformers import pipeline

from wm_hub.atomic_io import write_json, write_jsonl, write_text
from wm_hub.bootstrap.annotate import AnnotateConfig, annotate, blank_actions, read_annotations
from wm_hub.bootstrap.sampling import SamplingConfig, sample_annotations
from wm_hub.data.shapes_world import ShapesTriplet, ShapesWorld
from wm_hub.evaluation.probe import ProbeConfig, run_probe
from wm_hub.models.loading import load_backbone
from wm_hub.sandbox.cells import CellReader, scene_contents
from wm_hub.sandbox.finetune import demo_recipe, fine_tune
from wm_hub.sandbox.measure import greedy_next_codes, image_scores, measure_dynamics
from wm_hub.sandbox.study_report import plot_study, study_report
from wm_hub.sandbox.videos import label_accuracy, write_sandbox_videos
from wm_hub.sandbox.world import SANDBOX_BASE, SANDBOX_WORLD

METRICS = ("whole_image", "changed_cells", "all_cells")
VARIANTS = {  # Table 4: (IDM-labelled video pairs, recognition-weighted loss)
    "ft": (False, False),
    "no_synthetic": (False, True),
    "no_weighting": (True, False),
    "full": (True, True),
}
METRICS_FILE = "study_metrics.json"
IDM_MAX_NEW_TOKENS = 24  # longer than every sandbox action's tokens
IDM_MAX_COMPLETION_TOKENS = 72  # a sandbox IDM's rationale (at most two changed cells) and action


QUICK_SIZES: dict[str, Any] = dict(
    num_eval=12, num_train=64, seeds=[0, 1], curve_steps=6, curve_every=3, data_sizes=[16], fdm_steps=3,
    num_videos=4, k=8, k_grid=[8], labeller_steps=[3], best_of=[1, 2], num_rollouts=4, rollout_length=2,
    rollout_candidates=2, probe_num=8, grpo_steps=2, grpo_best_of=2,
)  # fmt: skip
"""The CI sizes of the sandbox study (:meth:`StudyConfig.quick`, ``--quick``)."""


@dataclass
class StudyConfig:
    """Sizes of the sandbox study (the defaults: about 90 minutes on 2 CPU cores; :meth:`quick`: about a minute).

    Args:
        out: Output folder (runs, results.json, report.md, plots); rerun to resume.
        base: The sandbox base every model starts from.
        num_eval: Held-out test triplets measured (the same ones everywhere).
        num_train: Labelled triplets of the training split.
        seeds: Seeds of the Table 4 runs.
        curve_steps: Steps of the IDM and FDM learning-curve runs (constant learning rate after warm-up).
        curve_every: A checkpoint every this many steps (measured as the learning curve).
        data_sizes: Labelled triplets of the data-size curve (``num_train`` is the curve runs' last point).
        fdm_steps: Steps of every Table 4 and scaling FDM run (the demo recipe, cosine schedule).
        num_videos: Unlabelled sandbox videos cut into key-frame pairs (5 pairs each).
        k: Pairs Algorithm 1 keeps for the full method.
        k_grid: K of the scaling runs (0 and all pairs are added).
        labeller_steps: Checkpoints of the IDM run used as weaker labellers.
        best_of: N of best-of-N.
        num_rollouts: Chains of actions rolled out.
        rollout_length: Actions per chain.
        rollout_candidates: Candidates per verified rollout step.
        probe_num: Held-out triplets probed.
        grpo_steps: GRPO steps of each FDM and IDM GRPO run (``recipes/sandbox/grpo.yaml``).
        grpo_best_of: N of the best-of-N measured before and after GRPO.
        seed: Seed of sampling, random K and the rollouts' chains.
        quick_sizes: The CI sizes (:data:`QUICK_SIZES`, about two minutes) for every size left at its default (a
            size given equal to its default is taken as left): the structure, not the figures.
    """

    out: Path
    base: Path = SANDBOX_BASE
    num_eval: int = 200
    num_train: int = 4000
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    curve_steps: int = 600
    curve_every: int = 100
    data_sizes: list[int] = field(default_factory=lambda: [250, 1000])
    fdm_steps: int = 250
    num_videos: int = 400
    k: int = 1000
    k_grid: list[int] = field(default_factory=lambda: [250, 500, 1000])
    labeller_steps: list[int] = field(default_factory=lambda: [100, 300])
    best_of: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    num_rollouts: int = 100
    rollout_length: int = 5
    rollout_candidates: int = 4
    probe_num: int = 200
    grpo_steps: int = 100
    grpo_best_of: int = 8
    seed: int = 0
    quick_sizes: bool = field(default=False, metadata={"aliases": ["--quick"]})

    @classmethod
    def quick(cls, **overrides: Any) -> StudyConfig:
        """The CI size (:data:`QUICK_SIZES`): every part and file, tiny budgets (its figures say nothing)."""
        return cls(**{**QUICK_SIZES, **overrides})

    def __post_init__(self) -> None:
        self.out, self.base = Path(self.out), Path(self.base)
        if self.quick_sizes:
            for spec in dataclasses.fields(self):
                default = spec.default if spec.default_factory is dataclasses.MISSING else spec.default_factory()
                if spec.name in QUICK_SIZES and getattr(self, spec.name) == default:
                    setattr(self, spec.name, QUICK_SIZES[spec.name])
        if self.curve_steps % self.curve_every:
            raise ValueError(
                f"curve_steps ({self.curve_steps}) must be a multiple of curve_every ({self.curve_every})"
            )
        if any(step % self.curve_every or not 0 < step < self.curve_steps for step in self.labeller_steps):
            raise ValueError(f"labeller_steps must be checkpoints of the curve run (multiples of {self.curve_every})")
        if any(not 0 < size < self.num_train for size in self.data_sizes):
            raise ValueError(f"data_sizes must be between 0 and num_train ({self.num_train})")
        if len(self.seeds) < 2:
            raise ValueError("Table 4 needs at least two seeds (mean and std)")


class Study:
    """Runs the study's parts; every trained model and measurement is kept under ``config.out``.

    Args:
        config: The study's sizes.
    """

    def __init__(self, config: StudyConfig):
        if not (config.base / "config.json").is_file():
            raise FileNotFoundError(f"no sandbox base at {config.base}: run `wm-hub sandbox pretrain` or pass --base")
        self.config = config
        self.runs = config.out / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.world = ShapesWorld(SANDBOX_WORLD)
        self.reader = CellReader(SANDBOX_WORLD)
        self.triplets = [self.world.triplet("test", index) for index in range(config.num_eval)]
        self.source_codes = torch.stack([scene_contents(t.source_scene, SANDBOX_WORLD) for t in self.triplets])
        self.target_codes = torch.stack([scene_contents(t.target_scene, SANDBOX_WORLD) for t in self.triplets])
        self.recipes = {task: yaml.safe_load(demo_recipe(task).read_text()) for task in ("idm", "fdm")}

    # training ------------------------------------------------------------------------------------------------------

    def _labelled_source(self, task: str, num_train: int) -> dict[str, Any]:
        source = next(s for s in self.recipes[task]["sources"] if s["builder"] == "shapes_world")
        return {**source, "builder_kwargs": {**source["builder_kwargs"], "num_train": num_train}}

    def train(
        self,
        name: str,
        task: str,
        steps: int,
        *,
        seed: int = 0,
        weighted: bool = True,
        pairs: Path | None = None,
        num_train: int | None = None,
        constant: bool = False,
        checkpoints: bool = False,
    ) -> Path:
        """Fine-tune ``runs/<name>`` from the base with the demo recipe of ``task`` (skipped when done).

        Args:
            name: The run's folder under ``runs``.
            task: ``"idm"`` or ``"fdm"``.
            steps: Optimizer steps.
            seed: Training seed (data order).
            weighted: FDM only: the recipe's recognition weighting (else the standard loss).
            pairs: FDM only: a JSONL of IDM-labelled pairs (in an annotation folder) added to the labelled data.
            num_train: Labelled triplets (default: ``config.num_train``).
            constant: A learning-curve run: constant learning rate after warm-up (no cosine decay).
            checkpoints: Save the weights every ``curve_every`` steps (``checkpoint-<step>``).
        """
        out = self.runs / name
        if (out / "training_run.json").is_file():
            return out
        shutil.rmtree(out, ignore_errors=True)  # an interrupted run starts again
        sources = [self._labelled_source(task, num_train or self.config.num_train)]
        if pairs is not None:
            sources.append(
                {
                    "builder": "synthetic_triplets",
                    "data_dir": str(pairs.parent.resolve()),
                    "builder_kwargs": {"annotation_files": [pairs.name]},
                }
            )
        overrides: dict[str, Any] = {"sources": sources, "max_steps": steps, "seed": seed, "disable_tqdm": True}
        overrides["warmup_steps"] = min(self.recipes[task]["warmup_steps"], max(steps // 10, 1))
        if task == "fdm" and not weighted:
            overrides["loss_weighting"] = "none"
        if constant:
            overrides["lr_scheduler_type"] = "constant_with_warmup"
        if checkpoints:
            overrides.update(save_strategy="steps", save_steps=self.config.curve_every, save_only_model=True)
        print(f"[study] training {name} ({task}, {steps} steps)", flush=True)
        fine_tune(task, self.config.base, out, in_process=True, **overrides)
        return out

    def train_grpo(self, name: str, task: str, policy: Path, verifier: Path, *, seed: int = 0) -> Path:
        """GRPO of the SFT ``policy`` rewarded by the frozen ``verifier`` into ``runs/<name>`` (skipped when done),
        with ``recipes/sandbox/grpo.yaml`` on the study's labelled triplets.

        Args:
            name: The run's folder under ``runs``.
            task: The policy's task: ``"fdm"`` (rewarded by an IDM) or ``"idm"`` (rewarded by an FDM).
            policy: The SFT model trained (a LoRA, merged into it when saved).
            verifier: The frozen reward model.
            seed: GRPO seed (prompt order and sampling).
        """
        out = self.runs / name
        if (out / "training_run.json").is_file():
            return out
        shutil.rmtree(out, ignore_errors=True)
        overrides: dict[str, Any] = {
            "task": task,
            "reward_model": str(verifier),
            "sources": [self._labelled_source(task, self.config.num_train)],
            "max_steps": self.config.grpo_steps,
            "warmup_steps": min(5, max(self.config.grpo_steps // 10, 1)),
            "seed": seed,
            "logging_steps": 1,  # the reward of every step (the report's curve)
            "disable_tqdm": True,
        }
        if task == "idm":
            overrides["max_completion_length"] = IDM_MAX_COMPLETION_TOKENS
        print(f"[study] GRPO {name} ({task}, {self.config.grpo_steps} steps)", flush=True)
        fine_tune("grpo", policy, out, in_process=True, **overrides)
        return out

    def checkpoint(self, run: Path, step: int) -> Path:
        """``run``'s checkpoint at ``step`` as a whole model folder (``runs/<run>-step<step>``)."""

        out = run.parent / f"{run.name}-step{step}"
        if not (out / "config.json").is_file():
            backbone = load_backbone(str(run))
            backbone.model.load_state_dict(load_file(run / f"checkpoint-{step}" / "model.safetensors"))
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            backbone.save_pretrained(tmp)
            os.replace(tmp, out)
        return out

    # measurements --------------------------------------------------------------------------------------------------

    def measured(self, path: Path, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``measure()``, cached in ``path`` (written atomically)."""
        if path.is_file():
            return json.loads(path.read_text())
        value = measure()
        write_json(path, value)
        return value

    def fdm_rows(self, model: Path, cache: Path | None = None) -> dict[str, Any]:
        """Greedy FDM scores on the held-out triplets, and each triplet's (for paired tests).

        Args:
            model: The model folder.
            cache: Where the figures are kept (default: ``model/study_metrics.json``).
        """

        def measure() -> dict[str, Any]:
            backbone = load_backbone(str(model))
            predicted = greedy_next_codes(backbone, self.source_codes, [t.action.text for t in self.triplets])
            return _scores_with_rows(predicted, self.target_codes, self.source_codes)

        return self.measured(cache or model / METRICS_FILE, measure)

    def sampled(self, model: Path, verifier: Path) -> dict[str, Any]:
        """The FDM ``model`` sampled: one sample (N = 1) and best-of-``grpo_best_of`` with the IDM ``verifier``, on the
        held-out triplets (kept in ``model/study_sampled.json``)."""

        def measure() -> dict[str, Any]:
            n = self.config.grpo_best_of
            fdm = pipeline("forward-dynamics", model=str(model))
            idm = pipeline("inverse-dynamics", model=str(verifier))
            rows = fdm(
                [t.source for t in self.triplets], [t.action.text for t in self.triplets], num_candidates=n,
                verifier=idm, seed=self.config.seed, return_candidates=True,
            )  # fmt: skip
            changed = self.target_codes != self.source_codes
            first = self.reader.read([row["candidates"][0] if row["candidates"] else row["image"] for row in rows])
            chosen = self.reader.read([row["image"] for row in rows])
            return {
                "n1": image_scores(first, self.target_codes, changed),
                f"best_of_{n}": image_scores(chosen, self.target_codes, changed),
            }

        return self.measured(model / "study_sampled.json", measure)

    def idm_exact_match(self, model: Path, cache: Path | None = None) -> float:
        """Greedy IDM exact match on the held-out triplets (kept as in :meth:`fdm_rows`)."""

        def measure() -> dict[str, Any]:
            return measure_dynamics(load_backbone(str(model)), SANDBOX_WORLD, self.config.num_eval, tasks=("idm",))

        return self.measured(cache or model / METRICS_FILE, measure)["idm_exact_match"]

    # the video side of the loop ------------------------------------------------------------------------------------

    def keyframes(self) -> Path:
        """Unlabelled sandbox videos and their key frames (``wm-hub keyframes``), written once."""
        videos, keyframes = self.config.out / "videos", self.config.out / "keyframes"
        if not (keyframes / "keyframes.jsonl").is_file():
            write_sandbox_videos(videos, self.config.num_videos)
            shutil.rmtree(keyframes, ignore_errors=True)
            env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
            command = [sys.executable, "-m", "wm_hub.cli", "keyframes", str(videos), "--out", str(keyframes)]
            subprocess.run(command, check=True, env=env)
        return keyframes

    def annotated(self, idm: Path, name: str) -> tuple[Path, list[dict[str, Any]]]:
        """The key-frame pairs labelled by ``idm`` (``annotated/<name>``) and their rows."""

        out = self.config.out / "annotated" / name
        keyframes = self.keyframes()
        if not (out / "done.json").is_file():
            annotate(
                AnnotateConfig(
                    idm=str(idm),
                    data=str(keyframes),
                    out=str(out),
                    batch_size=64,
                    max_new_tokens=IDM_MAX_NEW_TOKENS,
                    class_source="verb",
                )  # fmt: skip
            )
            write_json(out / "done.json", {"idm": str(idm)})
        return out, read_annotations(out)

    def pairs(self, folder: Path, rows: list[dict[str, Any]], how: str, k: int | None = None) -> Path | None:
        """A JSONL of kept pairs in ``folder``: ``stratified`` top K (Algorithm 1), ``random`` K, or ``all``.

        A pair the IDM wrote no action for is no label and is never kept (as ``wm-hub sample`` leaves it out);
        ``None`` when no pair has an action (the FDM then trains on the labelled triplets alone).
        """

        path = folder / (f"{how}-{k}.jsonl" if k is not None else f"{how}.jsonl")
        if path.is_file():
            return path
        labels = [row for row in rows if row["action"].strip()]
        if not labels:
            return None
        if how == "stratified":
            sample_annotations(folder, path, SamplingConfig(k=k))
            return path
        rng = random.Random(f"study/random/{self.config.seed}")
        return write_jsonl(path, labels if how == "all" else rng.sample(labels, min(k, len(labels))))

    # the parts -----------------------------------------------------------------------------------------------------

    def asymmetry(self) -> dict[str, Any]:
        """IDM and FDM learning curves against steps and labelled triplets (same base, data and budget)."""
        config = self.config
        steps = list(range(config.curve_every, config.curve_steps + 1, config.curve_every))
        idm_run = self.labeller()
        fdm_run = self.train("fdm-curve", "fdm", config.curve_steps, constant=True, checkpoints=True)
        idm_curve = [self.idm_exact_match(config.base, self.runs / "base-idm.json")]
        idm_curve += [self.idm_exact_match(self._at(idm_run, step)) for step in steps]
        fdm_curve = [self.fdm_rows(config.base, self.runs / "base-fdm.json")]
        fdm_curve += [self.fdm_rows(self._at(fdm_run, step)) for step in steps]
        sizes = [*config.data_sizes, config.num_train]
        idm_sizes, fdm_sizes = [], []
        for size in config.data_sizes:
            idm = self.train(f"idm-n{size}", "idm", config.curve_steps, num_train=size, constant=True)
            fdm = self.train(f"fdm-n{size}", "fdm", config.curve_steps, num_train=size, constant=True)
            idm_sizes.append(self.idm_exact_match(idm))
            fdm_sizes.append(self.fdm_rows(fdm))
        idm_sizes.append(idm_curve[-1])
        fdm_sizes.append(fdm_curve[-1])
        return {
            "steps": [0, *steps],
            "idm_exact_match": idm_curve,
            "fdm": {metric: [row[metric] for row in fdm_curve] for metric in METRICS},
            "num_labelled": sizes,
            "idm_exact_match_by_size": idm_sizes,
            "fdm_by_size": {metric: [row[metric] for row in fdm_sizes] for metric in METRICS},
        }

    def _at(self, run: Path, step: int) -> Path:
        return run if step == self.config.curve_steps else self.checkpoint(run, step)

    def labeller(self) -> Path:
        """The IDM that labels the videos: the IDM learning-curve run (its last step)."""
        return self.train("idm-curve", "idm", self.config.curve_steps, constant=True, checkpoints=True)

    def kept_pairs(self) -> Path | None:
        """The full method's synthetic data: the labeller's stratified top K of the video key-frame pairs."""
        folder, rows = self.annotated(self.labeller(), "idm")
        return self.pairs(folder, rows, "stratified", self.config.k)

    def full_fdm(self) -> Path:
        """The full method's FDM of the first seed (probed, verified and rolled out)."""
        seed = self.config.seeds[0]
        return self.train(f"fdm-full-seed{seed}", "fdm", self.config.fdm_steps, seed=seed, pairs=self.kept_pairs())

    def table4(self) -> dict[str, Any]:
        """FT / w/o synthetic / w/o weighting / full over seeds, paired Wilcoxon tests against the full method."""

        config = self.config
        folder, rows = self.annotated(self.labeller(), "idm")
        kept = self.kept_pairs()
        variants: dict[str, Any] = {}
        per_row: dict[str, dict[str, np.ndarray]] = {}
        for name, (synthetic, weighted) in VARIANTS.items():
            seeds = {}
            for seed in config.seeds:
                run = self.train(
                    f"fdm-{name}-seed{seed}", "fdm", config.fdm_steps, seed=seed, weighted=weighted,
                    pairs=kept if synthetic else None,
                )  # fmt: skip
                seeds[str(seed)] = self.fdm_rows(run)
            variants[name] = {
                "seeds": {seed: {m: scores[m] for m in METRICS} for seed, scores in seeds.items()},
                "mean": {m: float(np.mean([s[m] for s in seeds.values()])) for m in METRICS},
                "std": {m: float(np.std([s[m] for s in seeds.values()], ddof=1)) for m in METRICS},
            }
            per_row[name] = {m: np.mean([s["rows"][m] for s in seeds.values()], axis=0) for m in METRICS}
        tests = {}
        for name in VARIANTS:
            if name == "full":
                continue
            tests[name] = {}
            for metric in METRICS:
                difference = per_row["full"][metric] - per_row[name][metric]
                p = 1.0 if not np.any(difference) else float(wilcoxon(difference).pvalue)
                tests[name][f"{metric}_p"] = p
        return {
            "variants": variants,
            "wilcoxon_against_full": tests,
            "num_pairs": len(rows),
            "blank_actions": blank_actions(rows),  # no labels: never kept
            "num_kept": len(kept.read_text().splitlines()) if kept else 0,
            "label_accuracy": label_accuracy(config.out / "videos", rows),
        }

    def scaling(self) -> dict[str, Any]:
        """The FDM against K (stratified, random, all) and against the labelling IDM's accuracy."""
        config = self.config
        folder, rows = self.annotated(self.labeller(), "idm")
        seed = config.seeds[0]

        def fdm(name: str, pairs: Path | None) -> dict[str, Any]:
            run = self.train(name, "fdm", config.fdm_steps, seed=seed, pairs=pairs)
            return {m: self.fdm_rows(run)[m] for m in METRICS}

        ks = [k for k in config.k_grid if k < len(rows)]
        stratified = [fdm(f"fdm-no_synthetic-seed{seed}", None)]
        stratified += [
            fdm(
                f"fdm-full-seed{seed}" if k == config.k else f"fdm-stratified{k}",
                self.pairs(folder, rows, "stratified", k),
            )
            for k in ks
        ]
        random_k = [fdm(f"fdm-random{k}", self.pairs(folder, rows, "random", k)) for k in ks]
        labellers = []
        for step in (*config.labeller_steps, config.curve_steps):
            idm = self._at(self.labeller(), step)
            if step == config.curve_steps:
                labelled_folder, labelled_rows = folder, rows
                run_name = f"fdm-full-seed{seed}"
            else:
                labelled_folder, labelled_rows = self.annotated(idm, f"idm-step{step}")
                run_name = f"fdm-labeller-step{step}"
            kept = self.pairs(labelled_folder, labelled_rows, "stratified", config.k)
            labellers.append(
                {
                    "idm_step": step,
                    "idm_exact_match": self.idm_exact_match(idm),
                    "label_accuracy": label_accuracy(config.out / "videos", labelled_rows),
                    "fdm": fdm(run_name, kept),
                }
            )
        return {
            "num_pairs": len(rows),
            "blank_actions": blank_actions(rows),
            "k": [0, *ks],
            "stratified": stratified,
            "random": [stratified[0], *random_k],
            "all": fdm("fdm-all", self.pairs(folder, rows, "all")),
            "labellers": labellers,
        }

    def probe(self) -> dict[str, Any]:
        """Trajectory-preference win rates (fractions) of the base, the IDM and the full FDM, both directions."""

        triplets = self.triplets[: self.config.probe_num]
        rng = random.Random(f"study/counterfactual/{self.config.seed}")
        counterfactuals = {t.id: action for t in triplets if (action := self.counterfactual(t, rng)) is not None}
        models = {
            "base": self.config.base,
            "idm": self.labeller(),
            "fdm": self.full_fdm(),
        }
        result = {}
        for name, model in models.items():

            def measure(model=model) -> dict[str, Any]:
                outcome = run_probe(
                    load_backbone(str(model)), [t.id for t in triplets], [t.action.kind for t in triplets],
                    [t.source for t in triplets], [t.action.text for t in triplets], [t.target for t in triplets],
                    ProbeConfig(batch_size=64), counterfactuals=counterfactuals,
                )  # fmt: skip
                return {
                    direction: {negative: rates["all"]["win_rate"] / 100 for negative, rates in by_negative.items()}
                    for direction, by_negative in outcome.win_rates.items()
                }

            result[name] = self.measured(self.runs / f"probe-{name}.json", measure)
        return result

    def counterfactual(self, triplet: ShapesTriplet, rng: random.Random) -> str | None:
        """Another valid action of the triplet's kind on its source scene, with another outcome (a minimal edit)."""
        options = [
            action.text
            for action in self.world.valid_actions(triplet.source_scene, triplet.action.kind, rng)
            if action.apply(triplet.source_scene) != triplet.target_scene
        ]
        return rng.choice(options) if options else None

    def best_of_n(self) -> dict[str, Any]:
        """Best-of-N on the held-out triplets: IDM verifier, oracle and random choice among the first N samples."""

        config = self.config
        fdm_run = self.full_fdm()

        def measure() -> dict[str, Any]:
            n_max = max(config.best_of)
            fdm = pipeline("forward-dynamics", model=str(fdm_run))
            idm = pipeline("inverse-dynamics", model=str(self.labeller()))
            rows = fdm(
                [t.source for t in self.triplets], [t.action.text for t in self.triplets], num_candidates=n_max,
                verifier=idm, seed=config.seed, return_candidates=True,
            )  # fmt: skip
            images = [image for row in rows for image in (row["candidates"] or [row["image"]])]
            codes = self.reader.read(images).reshape(len(self.triplets), n_max, -1)
            scores = torch.tensor([row["scores"] or [row["score"]] for row in rows])
            right = codes == self.target_codes[:, None]  # (rows, N, cells)
            changed = (self.target_codes != self.source_codes)[:, None].expand_as(right)
            per_candidate = _per_image(right, changed)
            result: dict[str, Any] = {"n": list(config.best_of), "verifier": {}, "oracle": {}, "random": {}}
            index = torch.arange(len(self.triplets))
            for n in config.best_of:
                by_verifier = scores[:, :n].argmax(dim=1)
                by_oracle = right[:, :n].sum(dim=2).argmax(dim=1)
                for metric, values in per_candidate.items():
                    for key, choice in (("verifier", by_verifier), ("oracle", by_oracle)):
                        result[key].setdefault(metric, []).append(float(values[index, choice].mean()))
                    result["random"].setdefault(metric, []).append(float(values[:, :n].mean()))
            return result

        return self.measured(self.runs / "best_of_n.json", measure)

    def rollouts(self) -> dict[str, Any]:
        """Chains of 1..L actions: greedy, sampled and IDM-verified rollouts of the full FDM against copying."""

        config = self.config
        fdm_run = self.full_fdm()

        def measure() -> dict[str, Any]:
            starts, chains, truths = self.chains()
            fdm = pipeline("forward-dynamics", model=str(fdm_run))
            idm = pipeline("inverse-dynamics", model=str(self.labeller()))
            steps = [[chain[step] for chain in chains] for step in range(config.rollout_length)]
            modes = {
                "greedy": {"num_candidates": 1, "top_k": 1},
                "sampled": {"num_candidates": 1, "seed": config.seed},
                "verified": {"num_candidates": config.rollout_candidates, "verifier": idm, "seed": config.seed},
            }
            source = torch.stack([scene_contents(scene, SANDBOX_WORLD) for scene in truths[0]])
            result: dict[str, Any] = {"steps": list(range(1, config.rollout_length + 1))}
            for mode, kwargs in modes.items():
                rolled = fdm(starts, actions=steps, **kwargs)
                for step in range(config.rollout_length):
                    codes = self.reader.read([chain[step]["image"] for chain in rolled])
                    truth = torch.stack([scene_contents(scene, SANDBOX_WORLD) for scene in truths[step + 1]])
                    scores = image_scores(codes, truth, truth != source)
                    for metric in METRICS:
                        result.setdefault(mode, {}).setdefault(metric, []).append(scores[metric])
            for step in range(config.rollout_length):
                truth = torch.stack([scene_contents(scene, SANDBOX_WORLD) for scene in truths[step + 1]])
                scores = image_scores(source, truth, truth != source)
                for metric in METRICS:
                    result.setdefault("copy", {}).setdefault(metric, []).append(scores[metric])
            return result

        return self.measured(self.runs / "rollouts.json", measure)

    def grpo(self) -> dict[str, Any]:
        """SFT against SFT + GRPO from the verifier against SFT with GRPO's wall time as more steps, over seeds.

        The FDM: each seed's full-method FDM (Table 4), GRPO-trained on the labelling IDM's reward; its control is the
        same recipe from the base for more steps, as many as GRPO's seconds buy at the SFT run's seconds per step.
        The IDM: the labelling IDM, GRPO-trained on the reward of each seed's full FDM; its control is the labeller's
        recipe (constant rate) for the extra steps GRPO's seconds buy, with that seed.
        """
        config = self.config
        labeller = self.labeller()
        kept = self.kept_pairs()
        fdm: dict[str, dict[str, Any]] = {"sft": {}, "grpo": {}, "sft_matched": {}}
        idm: dict[str, dict[str, float]] = {"sft": {}, "grpo": {}, "sft_matched": {}}
        rewards: dict[str, dict[str, list[float]]] = {"fdm": {}, "idm": {}}
        seconds: dict[str, list[float]] = {"fdm_grpo": [], "fdm_sft": [], "idm_grpo": [], "idm_sft": []}
        matched: dict[str, list[int]] = {"fdm": [], "idm": []}
        idm_sft_step = _seconds_per_step(labeller)
        for seed in config.seeds:
            key = str(seed)
            sft = self.train(f"fdm-full-seed{seed}", "fdm", config.fdm_steps, seed=seed, pairs=kept)
            tuned = self.train_grpo(f"fdm-grpo-seed{seed}", "fdm", sft, labeller, seed=seed)
            grpo_step, sft_step = _seconds_per_step(tuned), _seconds_per_step(sft)
            extra = round(config.grpo_steps * grpo_step / sft_step)
            control = self.train(f"fdm-matched-seed{seed}", "fdm", config.fdm_steps + extra, seed=seed, pairs=kept)
            for name, model in (("sft", sft), ("grpo", tuned), ("sft_matched", control)):
                greedy = {metric: self.fdm_rows(model)[metric] for metric in METRICS}
                fdm[name][key] = {"greedy": greedy, **self.sampled(model, labeller)}
            rewards["fdm"][key] = _run_summary(tuned)["reward_per_step"]
            seconds["fdm_grpo"].append(grpo_step)
            seconds["fdm_sft"].append(sft_step)
            matched["fdm"].append(extra)

            tuned_idm = self.train_grpo(f"idm-grpo-seed{seed}", "idm", labeller, sft, seed=seed)
            grpo_step = _seconds_per_step(tuned_idm)
            extra = round(config.grpo_steps * grpo_step / idm_sft_step)
            steps = config.curve_steps + extra
            control = self.train(f"idm-matched-seed{seed}", "idm", steps, seed=seed, constant=True)
            idm["sft"][key] = self.idm_exact_match(labeller)
            idm["grpo"][key] = self.idm_exact_match(tuned_idm)
            idm["sft_matched"][key] = self.idm_exact_match(control)
            rewards["idm"][key] = _run_summary(tuned_idm)["reward_per_step"]
            seconds["idm_grpo"].append(grpo_step)
            seconds["idm_sft"].append(idm_sft_step)
            matched["idm"].append(extra)
        modes = list(next(iter(fdm["sft"].values())))

        def over_seeds(reduce: Callable[[list[float]], float]) -> dict[str, Any]:
            return {
                name: {mode: {m: reduce([row[mode][m] for row in seeds.values()]) for m in METRICS} for mode in modes}
                for name, seeds in fdm.items()
            }

        return {
            "grpo_steps": config.grpo_steps,
            "fdm": {"seeds": fdm, "mean": over_seeds(_mean), "std": over_seeds(_std)},
            "idm": {
                "seeds": idm,
                "mean": {name: _mean(list(seeds.values())) for name, seeds in idm.items()},
                "std": {name: _std(list(seeds.values())) for name, seeds in idm.items()},
            },
            "matched_extra_steps": matched,
            "rewards": rewards,
            "seconds_per_step": {name: _mean(values) for name, values in seconds.items()},
        }

    def chains(self) -> tuple[list, list[list[str]], list[list]]:
        """``num_rollouts`` random scenes with ``rollout_length`` valid actions each: start images, action texts and
        the true scene at every step (``truths[0]`` the start)."""
        config, world = self.config, self.world
        rng = random.Random(f"study/rollouts/{config.seed}")
        starts, chains, truths = [], [], [[] for _ in range(config.rollout_length + 1)]
        while len(chains) < config.num_rollouts:
            scene = world.random_scene(rng)
            scenes, texts = [scene], []
            for _ in range(config.rollout_length):
                action = world.random_action(scenes[-1], rng, SANDBOX_WORLD.actions)
                if action is None:
                    break
                texts.append(action.text)
                scenes.append(action.apply(scenes[-1]))
            if len(texts) < config.rollout_length:
                continue
            starts.append(world.render(scene))
            chains.append(texts)
            for step, state in enumerate(scenes):
                truths[step].append(state)
        return starts, chains, truths


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1))


def _run_summary(run: Path) -> dict[str, Any]:
    return json.loads((run / "training_run.json").read_text())


def _seconds_per_step(run: Path) -> float:
    """A training run's seconds per optimizer step, from its ``training_run.json`` (SFT or GRPO)."""
    metrics = _run_summary(run)["metrics"]
    return metrics["train_runtime"] / metrics["global_step"]


def _per_image(right: torch.Tensor, changed: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each picture's whole-image exactness and cell accuracies, from ``(..., cells)`` right / changed masks."""
    return {
        "whole_image": right.all(dim=-1).float(),
        "changed_cells": (right & changed).sum(dim=-1) / changed.sum(dim=-1).clamp(min=1),
        "all_cells": right.float().mean(dim=-1),
    }


def _scores_with_rows(predicted: torch.Tensor, truth: torch.Tensor, source: torch.Tensor) -> dict[str, Any]:
    """:func:`image_scores` of the predictions, and under ``rows`` each triplet's (for the paired tests)."""
    changed = truth != source
    rows = {metric: values.tolist() for metric, values in _per_image(predicted == truth, changed).items()}
    return {**image_scores(predicted, truth, changed), "rows": rows}


PARTS = ("asymmetry", "table4", "scaling", "probe", "best_of_n", "rollouts", "grpo")
NOT_FRACTIONS = ("config", "wall_times", "rewards", "seconds_per_step")
"""Keys of ``results.json`` whose numbers are not fractions (settings, seconds, log-likelihood rewards)."""


def run_study(config: StudyConfig) -> dict[str, Any]:
    """Run every part (what is done is skipped) and write ``results.json``, ``report.md`` and the plots.

    ``wall_times`` holds the seconds each part took, summed over the invocations that worked on it (kept in
    ``runs/wall_times.json`` after each part, so a resumed study reports what it cost in all), their ``total_s``,
    and ``this_run_s``.
    """

    study = Study(config)
    start = time.perf_counter()
    spent_path = study.runs / "wall_times.json"
    spent = json.loads(spent_path.read_text()) if spent_path.is_file() else {}
    results: dict[str, Any] = {}
    for part in PARTS:
        begin = time.perf_counter()
        print(f"[study] {part}", flush=True)
        results[part] = getattr(study, part)()
        spent[f"{part}_s"] = spent.get(f"{part}_s", 0.0) + time.perf_counter() - begin
        write_json(spent_path, spent)
    wall_times = {f"{part}_s": spent[f"{part}_s"] for part in PARTS}
    wall_times.update(total_s=sum(wall_times.values()), this_run_s=time.perf_counter() - start)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}
    world = dataclasses.asdict(SANDBOX_WORLD)
    results = {"config": settings, "world": world, "wall_times": wall_times, **results}
    write_json(config.out / "results.json", results)
    plots = plot_study(results, config.out)
    write_text(config.out / "report.md", study_report(results, [path.name for path in plots]))
    return results


def finite_fractions(value: Any, path: str = "") -> list[str]:
    """Paths of the figures of ``value`` (floats outside :data:`NOT_FRACTIONS`) not finite in [0, 1]."""
    if isinstance(value, dict):
        return [
            bad
            for key, item in value.items()
            if key not in NOT_FRACTIONS
            for bad in finite_fractions(item, f"{path}/{key}")
        ]
    if isinstance(value, list):
        return [bad for index, item in enumerate(value) for bad in finite_fractions(item, f"{path}[{index}]")]
    if isinstance(value, float) and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        return [path]
    return []
