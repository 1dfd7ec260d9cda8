"""``wm-hub sandbox``: fit the sandbox image tokenizer, pretrain the sandbox base model, run the sandbox study."""

from __future__ import annotations

import json
from pathlib import Path

from wm_hub.cli._tasks import Task


def _tokenizer(config) -> int:
    from wm_hub.sandbox.tokenizer import build_sandbox_tokenizer

    print(json.dumps(build_sandbox_tokenizer(config), indent=2))
    return 0


def _pretrain(config) -> int:
    from wm_hub.sandbox.pretrain import pretrain

    if not (Path(config.vqgan) / "config.json").is_file():
        raise SystemExit(f"error: --vqgan {config.vqgan}: no fitted sandbox tokenizer (see wm-hub sandbox tokenizer)")
    try:
        pretrain(config)
    except (FileNotFoundError, FileExistsError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"Wrote the sandbox base to {config.output_dir}")
    return 0


def _study(config) -> int:
    from wm_hub.sandbox.study import run_study

    try:
        results = run_study(config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"Wrote {config.out / 'report.md'} and results.json ({results['wall_times']['total_s'] / 60:.1f} min)")
    return 0


def _tokenizer_config() -> tuple[type, ...]:
    from wm_hub.sandbox.tokenizer import SandboxTokenizerConfig

    return (SandboxTokenizerConfig,)


def _pretrain_config() -> tuple[type, ...]:
    from wm_hub.sandbox.pretrain import SandboxPretrainConfig

    return (SandboxPretrainConfig,)


def _study_config() -> tuple[type, ...]:
    from wm_hub.sandbox.study import StudyConfig

    return (StudyConfig,)


TASKS = (
    Task(
        words=("sandbox", "tokenizer"),
        help="fit the sandbox VQGAN: one code per cell pattern, stable and exact",
        configs=_tokenizer_config,
        run=_tokenizer,
        description="Fits a Chameleon-layout diffusers VQModel on 32 px sandbox pictures (4 x 4 cells) whose code k "
        "means cell pattern k (empty, or a shape and colour), then measures stability and cell exactness on "
        "--num-pairs held-out triplets. Writes OUT (a VQModel folder) and OUT/fit_log.json.",
        epilog="example: wm-hub sandbox tokenizer --out sandbox/tokenizer",
    ),
    Task(
        words=("sandbox", "pretrain"),
        help="pretrain the sandbox base (captioning, comparing, drawing, editing; no actions), resumable",
        configs=_pretrain_config,
        run=_pretrain,
        description="Pretrains the tiny Chameleon-layout sandbox base through wm-hub's trainer (TRL SFTTrainer) on "
        "captioning, two-picture captioning, listing where two pictures differ, drawing from a caption and "
        "redrawing with a list of changed cells (or none: a copy), and spatial questions on one picture (where one "
        "object is from another, what is at a displacement from an object): it reads, compares and writes pictures "
        "but never sees an action. Checkpoints go to OUTPUT_DIR/checkpoints/stage-N; a rerun resumes from the last "
        "one. With init_from, a later stage continues from a pretrained base (fresh optimizer and schedule) and the "
        "card covers every stage. The finished base is a load_backbone folder.\n\n"
        "--config reads a YAML recipe of these options (recipes/sandbox/pretrain*.yaml, which also set task_mix); "
        "options given on the command line override it.",
        epilog="example: wm-hub sandbox pretrain --config recipes/sandbox/pretrain.yaml; then (the shipped base's "
        "later stages) wm-hub sandbox pretrain --config recipes/sandbox/pretrain-stage2.yaml, then "
        "--config recipes/sandbox/pretrain-stage3.yaml",
    ),
    Task(
        words=("sandbox", "study"),
        help="the paper's claims and GRPO in the sandbox: curves, probe, Table 4, scaling, best-of-N, rollouts",
        configs=_study_config,
        run=_study,
        description="Fine-tunes IDMs and FDMs from the sandbox base with the demo recipes and measures the paper's "
        "claims on held-out sandbox triplets: IDM vs FDM learning curves (steps, labelled data), the trajectory-"
        "preference probe on the base and the fine-tuned models, the Table 4 ablations over 3 seeds with paired "
        "Wilcoxon tests, FDM quality against K of Algorithm 1 (stratified, random, all) and against the labelling "
        "IDM's accuracy, best-of-N with the IDM verifier against an oracle and random choice, and multi-step "
        "rollouts with and without verification; then GRPO from the verifier (FDM and IDM) against SFT and against "
        "SFT given GRPO's wall time. 1.5-2.5 hours on 2 CPU cores; resumable (each run and "
        "measurement is kept under OUT/runs). Writes OUT/results.json, OUT/report.md and PNG plots.",
        epilog="examples:\n  wm-hub sandbox study --out study\n  wm-hub sandbox study --out /tmp/study --quick   "
        "(every part with tiny budgets, about two minutes: checks the wiring, its figures say nothing)",
    ),
)
