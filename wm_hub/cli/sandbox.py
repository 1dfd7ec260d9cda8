"""``wm-hub sandbox``: fit the sandbox image tokenizer, pretrain the sandbox base model, run the sandbox study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _tokenizer(args: argparse.Namespace) -> int:
    from wm_hub.sandbox.tokenizer import SandboxTokenizerConfig, fit_sandbox_tokenizer, measure_tokenizer

    config = SandboxTokenizerConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    vqgan, log = fit_sandbox_tokenizer(config=config)
    log["heldout"] = measure_tokenizer(vqgan, num_pairs=args.num_pairs)
    out = Path(args.out)
    vqgan.save_pretrained(out)
    (out / "fit_log.json").write_text(json.dumps(log, indent=1) + "\n")
    print(json.dumps(log["heldout"], indent=2))
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    import yaml

    from wm_hub.sandbox.pretrain import SandboxPretrainConfig, pretrain

    values = {}
    if args.config:
        try:
            values = yaml.safe_load(Path(args.config).read_text()) or {}
            config = SandboxPretrainConfig(**values)
        except (OSError, yaml.YAMLError, TypeError) as error:
            raise SystemExit(f"error: {args.config}: {error}") from None
    else:
        config = SandboxPretrainConfig()
    for key in ("output_dir", "max_steps", "vqgan", "init_from"):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    pretrain(config)
    print(f"Wrote the sandbox base to {config.output_dir}")
    return 0


def _study(args: argparse.Namespace) -> int:
    from wm_hub.sandbox.study import StudyConfig, run_study

    sizes = {"out": Path(args.out), **({"base": Path(args.base)} if args.base else {})}
    try:
        config = StudyConfig.quick(**sizes) if args.quick else StudyConfig(**sizes)
        results = run_study(config)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"Wrote {config.out / 'report.md'} and results.json ({results['wall_times']['total_s'] / 60:.1f} min)")
    return 0


def register(subparsers) -> None:
    """Add ``wm-hub sandbox tokenizer`` and ``wm-hub sandbox pretrain``."""
    parser = subparsers.add_parser("sandbox", help="fit the sandbox tokenizer, pretrain the sandbox base model")
    tasks = parser.add_subparsers(dest="sandbox_task", required=True)
    fit = tasks.add_parser(
        "tokenizer",
        help="fit the sandbox VQGAN: one code per cell pattern, stable and exact",
        description="Fits a Chameleon-layout diffusers VQModel on 32 px sandbox pictures (4 x 4 cells) whose code k "
        "means cell pattern k (empty, or a shape and colour), then measures stability and cell exactness on 1000 "
        "held-out triplets. Writes OUT (a VQModel folder) and OUT/fit_log.json.",
        epilog="example: wm-hub sandbox tokenizer --out sandbox/tokenizer",
    )
    fit.add_argument("--out", required=True, help="output VQModel folder")
    fit.add_argument("--steps", type=int, default=800, help="optimizer steps (default: 800)")
    fit.add_argument("--batch-size", type=int, default=16, help="pictures per step (default: 16)")
    fit.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    fit.add_argument("--num-pairs", type=int, default=1000, help="held-out pairs measured (default: 1000)")
    fit.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    fit.set_defaults(func=_tokenizer)
    train = tasks.add_parser(
        "pretrain",
        help="pretrain the sandbox base (captioning, comparing, drawing, editing; no actions), resumable",
        description="Pretrains the tiny Chameleon-layout sandbox base through wm-hub's trainer (TRL SFTTrainer) on "
        "captioning, two-picture captioning, listing where two pictures differ, drawing from a caption and "
        "redrawing with a list of changed cells (or none: a copy), and spatial questions on one picture (where one "
        "object is from another, what is at a displacement from an object): it reads, compares and writes pictures "
        "but never sees an action. Checkpoints go to "
        "OUTPUT_DIR/checkpoints/stage-N; a rerun resumes from the last one. With init_from, a later stage continues "
        "from a pretrained base (fresh optimizer and schedule) and the card covers every stage. The finished base is "
        "a load_backbone folder.",
        epilog="example: wm-hub sandbox pretrain --config recipes/sandbox/pretrain.yaml; then (the shipped base's "
        "later stages) wm-hub sandbox pretrain --config recipes/sandbox/pretrain-stage2.yaml, then "
        "--config recipes/sandbox/pretrain-stage3.yaml",
    )
    train.add_argument("--config", help="YAML of SandboxPretrainConfig fields (recipes/sandbox/pretrain.yaml)")
    train.add_argument("--output_dir", help="override the config's output_dir")
    train.add_argument("--max_steps", type=int, help="override the config's max_steps")
    train.add_argument("--vqgan", help="override the config's tokenizer folder")
    train.add_argument("--init_from", help="override the config's init_from (a base to continue from)")
    train.set_defaults(func=_pretrain)
    study = tasks.add_parser(
        "study",
        help="measure the paper's claims in the sandbox: asymmetry, probe, Table 4, scaling, best-of-N, rollouts",
        description="Fine-tunes IDMs and FDMs from the sandbox base with the demo recipes and measures the paper's "
        "claims on held-out sandbox triplets: IDM vs FDM learning curves (steps, labelled data), the trajectory-"
        "preference probe on the base and the fine-tuned models, the Table 4 ablations over 3 seeds with paired "
        "Wilcoxon tests, FDM quality against K of Algorithm 1 (stratified, random, all) and against the labelling "
        "IDM's accuracy, best-of-N with the IDM verifier against an oracle and random choice, and multi-step "
        "rollouts with and without verification. About an hour on 2 CPU cores; resumable (each run and "
        "measurement is kept under OUT/runs). Writes OUT/results.json, OUT/report.md and PNG plots.",
        epilog="examples:\n  wm-hub sandbox study --out study\n  wm-hub sandbox study --out /tmp/study --quick   "
        "(every part with tiny budgets, about two minutes: checks the wiring, its figures say nothing)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    study.add_argument("--out", required=True, help="output folder (rerun to resume)")
    study.add_argument("--base", help="the sandbox base to start from (default: the shipped sandbox/base)")
    study.add_argument("--quick", action="store_true", help="tiny sizes (CI): the structure, not the figures")
    study.set_defaults(func=_study)
