"""The ``wm-hub`` command: one subcommand per user task, thin over the library.

Training and annotation at scale run as ``accelerate launch recipes/<stage>.py --config recipes/<model>/<stage>.yaml``;
everything else is a ``wm-hub`` subcommand. ``wm-hub <task> --help`` explains each one.

The model and data tasks are defined here; every other task lives in a module of :mod:`wm_hub.cli` with a
``register(subparsers)`` function, found at start-up (see that package), so a new task is one new module.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from wm_hub.atomic_io import read_jsonl_log, write_json, write_jsonl, write_with
from wm_hub.cli._tasks import Task

ARCHS = ("chameleon", "liquid", "emu3")
FIT_REPORT = "vq_fit.json"  # written next to a fitted VQGAN: data, settings, held-out PSNR


def _read_vqgan(path: str):
    from diffusers import VQModel

    from wm_hub.models.chameleon_vqgan import VQGAN_SUBFOLDER

    folder = Path(path) / VQGAN_SUBFOLDER if (Path(path) / VQGAN_SUBFOLDER).is_dir() else Path(path)
    if not (folder / "config.json").is_file():
        raise SystemExit(f"error: --vqgan {path}: no VQModel folder (config.json + weights) there or in its vqgan/")
    return VQModel.from_pretrained(folder), folder


def _tiny_model(args: argparse.Namespace) -> int:
    from wm_hub.models.tiny import TinySpec, save_tiny_model

    if args.arch == "emu3" and (args.vqgan or args.fit_vq):
        raise SystemExit("error: --vqgan/--fit-vq: emu3 has its own VQ model, not Chameleon's VQGAN")
    if args.fit_steps and not args.fit_vq:
        raise SystemExit("error: --fit-steps needs --fit-vq")
    vqgan, fitted_from = _read_vqgan(args.vqgan) if args.vqgan else (None, None)
    vq_sizes = TinySpec() if vqgan is None else TinySpec(vqgan.config.sample_size, vqgan.config.num_vq_embeddings)
    spec = TinySpec(
        image_size=args.image_size or vq_sizes.image_size,
        seed=args.seed,
        num_image_codes=args.num_image_codes or vq_sizes.num_image_codes,
    )
    fit_report = None
    if args.fit_vq:
        from wm_hub.training.vq_fitting import VQFitConfig, fit_tiny_vqgan

        fit_config = VQFitConfig(seed=args.seed, **({"steps": args.fit_steps} if args.fit_steps else {}))
        vqgan, metrics = fit_tiny_vqgan(spec, fit_config)
        fit_report = {"data": args.fit_vq, "spec": vars(spec), "config": vars(fit_config), **metrics.to_dict()}
    elif fitted_from is not None and (fitted_from / FIT_REPORT).is_file():
        fit_report = json.loads((fitted_from / FIT_REPORT).read_text())
    try:
        out = save_tiny_model(args.arch, args.out, spec, vqgan)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if fit_report is not None:
        (out / "vqgan" / FIT_REPORT).write_text(json.dumps(fit_report, indent=2) + "\n")
        print(f"VQGAN fit: held-out PSNR {fit_report['heldout_psnr']:.2f} dB, {fit_report['codes_used']} codes used")
    weights = "random weights" if vqgan is None else "random LM, fitted VQGAN"
    print(f"Wrote a tiny {args.arch} backbone ({weights}) to {out} (load it with wm_hub.load_backbone({str(out)!r}))")
    return 0


def _convert_vqgan(args: argparse.Namespace) -> int:
    from wm_hub.models.chameleon_vqgan import load_taming_checkpoint, read_vqgan_yaml

    if not Path(args.ckpt).is_file():
        raise SystemExit(f"error: --ckpt {args.ckpt}: no such file")
    vqgan = load_taming_checkpoint(args.ckpt, read_vqgan_yaml(args.yaml) if args.yaml else None)
    vqgan.save_pretrained(args.out)
    print(f"Wrote the VQGAN (diffusers.VQModel, encoder + decoder) to {args.out}")
    return 0


def _open_image(path: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except FileNotFoundError:
        raise SystemExit(f"error: --image {path}: no such file") from None
    except UnidentifiedImageError:
        raise SystemExit(f"error: --image {path}: not an image PIL can read") from None
    except OSError as error:  # a truncated or damaged file, or a folder
        raise SystemExit(f"error: --image {path}: cannot be read ({error})") from None


def _predict(args: argparse.Namespace) -> int:
    from wm_hub.cli._checks import check_trained_task
    from wm_hub.inference.generation import check_sampling, generate_images
    from wm_hub.models.loading import load_backbone

    if args.num_candidates < 1:
        raise SystemExit(f"error: --num-candidates must be >= 1, got {args.num_candidates}")
    try:
        check_sampling(args.temperature, args.top_k, args.top_p, as_flags=True)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if not args.action.strip():
        raise SystemExit("error: --action is blank: give the action text")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SystemExit(f"error: --out {args.out} is a file: give an output folder")
    check_trained_task("--model", args.model, "fdm")
    source = _open_image(args.image)
    backbone = load_backbone(args.model, device=args.device, dtype=args.dtype)
    prompt = backbone.build_fdm_sequence(source, args.action).input_ids
    output = generate_images(
        backbone,
        [prompt],
        num_candidates=args.num_candidates,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(output.images[0]):
        path = write_with(out / f"candidate_{index}.png", lambda tmp, image=image: image.save(tmp, format="PNG"))
        paths.append(str(path))
    for stale in set(out.glob("candidate_*.png")) - {Path(path) for path in paths}:  # from an earlier, larger run
        stale.unlink()
    summary = {"model": args.model, "image": args.image, "action": args.action, "seed": args.seed, "images": paths}
    write_json(out / "prediction.json", summary)
    print(json.dumps(summary, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from wm_hub.demo import DemoConfig, run_demo

    try:
        config = DemoConfig(
            out=Path(args.out),
            num_eval=args.num_eval,
            num_videos=args.num_videos,
            k=args.k,
            train_steps=args.train_steps,
        )
    except ValueError as error:  # before any training
        raise SystemExit(f"error: {error}") from None
    if args.base:
        config.base = Path(args.base)
    summary = run_demo(config)
    shown = {key: value for key, value in summary.items() if key != "examples"}
    print(json.dumps(shown, indent=2))
    out = Path(args.out)
    print(f"Wrote {out / 'demo_grid.png'}, {out / 'summary.json'} and {out / 'report.md'}")
    return 0


def _add_tiny_model(subparsers) -> None:
    parser = subparsers.add_parser(
        "tiny-model",
        help="write a random tiny backbone (real layout, local tokenizer) for tests and demos",
        description="Build a random-weight backbone with the real layout of its family (vocabulary, special tokens, "
        "VQ architecture) at laptop size, and save it like a real checkpoint. wm_hub.load_backbone(DIR) loads it "
        "through the same code path as Anole-7b, Liquid-7B or Emu3.",
        epilog="examples: wm-hub tiny-model --arch chameleon --out /tmp/tiny-chameleon; wm-hub tiny-model --arch "
        "chameleon --out /tmp/tiny-fitted --fit-vq shapes_world (then --vqgan /tmp/tiny-fitted reuses its VQGAN)",
    )
    parser.add_argument("--arch", choices=ARCHS, required=True, help="backbone family")
    parser.add_argument("--out", required=True, help="output folder (config.json, weights, tokenizer, VQ model)")
    parser.add_argument(
        "--image-size", type=int, help="image side in pixels (default: 64 -> 8x8 tokens, or the --vqgan's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    parser.add_argument("--num-image-codes", type=int, help="VQ codebook size (default: 512, or the --vqgan's)")
    vq = parser.add_mutually_exclusive_group()
    vq.add_argument(
        "--fit-vq",
        choices=("shapes_world",),
        help="chameleon/liquid: fit the VQGAN on this data so decoded images are recognisable (a few CPU minutes); "
        "PSNR in OUT/vqgan/vq_fit.json",
    )
    vq.add_argument("--vqgan", help="chameleon/liquid: reuse the fitted VQGAN of a model folder (or its vqgan/)")
    parser.add_argument("--fit-steps", type=int, help="training steps of --fit-vq (default: VQFitConfig's)")
    parser.set_defaults(func=_tiny_model)


def _add_convert_vqgan(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-vqgan",
        help="convert Meta's/Anole's vqgan.ckpt (Chameleon's VQGAN) into a diffusers VQModel folder",
        description="HF Chameleon checkpoints ship only the VQ encoder; the decoder is in Meta's vqgan.ckpt "
        "(taming-transformers layout). This writes it as a diffusers.VQModel folder. Put it in <model>/vqgan "
        "and load_backbone(<model>) finds it, or pass vqgan=<folder> to load_backbone.",
        epilog="example: wm-hub convert-vqgan --ckpt tokenizer/vqgan.ckpt --yaml tokenizer/vqgan.yaml "
        "--out Anole-7b-v0.1-hf/vqgan",
    )
    parser.add_argument("--ckpt", required=True, help="path to vqgan.ckpt")
    parser.add_argument("--yaml", help="path to vqgan.yaml (default: Chameleon-7B's config)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(func=_convert_vqgan)


def _add_sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-candidates", type=int, default=4, help="images sampled in one batch (default: 4)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (paper: 1.0)")
    parser.add_argument("--top-k", type=int, help="keep the k most likely image tokens (default: all)")
    parser.add_argument("--top-p", type=float, help="nucleus sampling over image tokens (default: off)")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed (default: 0)")


def _add_predict(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="forward dynamics: source image + action -> candidate next images",
        description="Sample candidate next observations for one source image and action with a world-model "
        "backbone, all candidates in one batched generate call. Writes candidate_<i>.png and prediction.json.",
        epilog='example: wm-hub predict --model /tmp/tiny-chameleon --image kitchen.jpg --action "open the drawer" '
        "--num-candidates 4 --out preds/",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--image", required=True, help="source image file")
    parser.add_argument("--action", required=True, help="action text")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", help="torch device (default: CPU)")
    parser.add_argument("--dtype", help="LM dtype, e.g. bfloat16 (default: checkpoint's)")
    _add_sampling_args(parser)
    parser.set_defaults(func=_predict)


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="offline end-to-end demo: the paper's whole loop on the pretrained sandbox base",
        description="The paper's loop at laptop scale, nothing downloaded, from the shipped sandbox base "
        "(sandbox/base): fine-tunes the IDM (`accelerate launch recipes/idm.py --config "
        "recipes/sandbox/demo-idm.yaml`), writes unlabelled sandbox videos, cuts their key frames (`wm-hub "
        "keyframes`), labels key-frame pairs with the IDM (`wm-hub annotate`), keeps the stratified top K (`wm-hub "
        "sample`), fine-tunes the FDM on labelled + IDM-labelled pairs with the recognition-weighted loss "
        "(recipes/sandbox/demo-fdm.yaml), and scores held-out triplets through pipeline('forward-dynamics') with "
        "best-of-8 IDM verification. Writes OUT/demo_grid.png, OUT/summary.json and OUT/report.md. Stages whose "
        "output exists are skipped. Runs from a source checkout (it uses recipes/).",
        epilog="example: wm-hub demo --out demo_out",
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument(
        "--num-eval", type=int, default=200, help="held-out triplets to score (default: 200; the grid shows 8)"
    )
    parser.add_argument("--base", help="the pretrained sandbox base (default: sandbox/base of the checkout)")
    parser.add_argument("--num-videos", type=int, default=400, help="unlabelled videos, 5 pairs each (default: 400)")
    parser.add_argument("--k", type=int, default=1500, help="pairs kept by stratified top-K (default: 1500)")
    parser.add_argument("--train-steps", type=int, help="IDM/FDM optimizer steps (default: the demo recipes')")
    parser.set_defaults(func=_demo)


def _data_build(args: argparse.Namespace) -> int:
    from wm_hub.hub.dataset_folder import build_hub_dataset

    config_kwargs = {"skip_missing": True} if args.skip_missing else {}
    if args.annotations:
        if args.name != "synthetic_triplets":
            raise SystemExit("error: --annotations is an option of the synthetic_triplets builder")
        config_kwargs["annotation_files"] = args.annotations
    try:
        build = build_hub_dataset(
            args.name,
            args.out,
            data_dir=args.data_dir,
            config_name=args.config,
            max_shard_size=args.max_shard_size,
            **config_kwargs,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        raise SystemExit(f"error: {error}") from None
    report_path = str(build.out / "build_report.json")
    skipped = {split: split_report.skipped_rows for split, split_report in build.report.splits.items()}
    if any(skipped.values()):
        print(f"Skipped rows with missing or unreadable files {skipped}, listed in {report_path}", file=sys.stderr)
    summary = {"out": str(build.out), "examples": build.num_examples, "skipped_rows": skipped, "report": report_path}
    print(json.dumps(summary, indent=2))
    return 0


def _add_data_build(tasks) -> None:
    parser = tasks.add_parser(
        "build",
        help="build a triplet dataset from local data into a Hub-layout folder",
        description="Run a registered dataset builder on a local copy of the data and write a folder laid out like\n"
        "a Hub dataset repo: datasets.load_dataset(OUT) loads it without wm-hub, and it uploads as it is.\n"
        "  OUT/data/{split}-00000-of-0000N.parquet  triplets, images embedded\n"
        "  OUT/README.md                            YAML (configs, dataset_info) that datasets reads\n"
        "  OUT/build_report.json                    rows per subset, rows without a target, skipped rows\n"
        "Builders: aurora (configs ag, magicbrush, something, kubric: data/<name>/train.json; bench: test.json,\n"
        "the paper's five subsets), epic_kitchens (EPIC_100_*.csv + rgb_frames or videos).\n"
        "Rows whose images are missing or unreadable stop the build with one error naming every such row,\n"
        "unless --skip-missing. OUT is written to a temporary folder beside it and renamed at the end.",
        epilog="examples:\n"
        "  wm-hub data build aurora --config bench --data-dir AURORA --out aurora-bench --skip-missing\n"
        "  wm-hub data build aurora --config ag --data-dir AURORA --out aurora-ag\n"
        "  wm-hub data build epic_kitchens --data-dir EPIC-KITCHENS --out epic-triplets --max-shard-size 1GB",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="registered builder, e.g. aurora or epic_kitchens")
    parser.add_argument("--config", help="builder config, e.g. bench (default: the builder's only config)")
    parser.add_argument(
        "--data-dir", help="local data root (AURORA checkout, EPIC-KITCHENS folder); not needed by generated data"
    )
    parser.add_argument("--out", required=True, help="output folder (must not exist, or be empty)")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="skip rows with missing or unreadable files, and list them in build_report.json",
    )
    parser.add_argument("--max-shard-size", default="500MB", help="largest Parquet shard (default: 500MB)")
    parser.add_argument(
        "--annotations",
        nargs="+",
        metavar="FILE",
        help="synthetic_triplets: read only these JSONL files of --data-dir, e.g. the output of wm-hub sample "
        "written into the annotation folder (default: the annotations-*.jsonl shards of wm-hub annotate)",
    )
    parser.set_defaults(func=_data_build)


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


def _load_triplets(data: str, split: str):
    import datasets

    path = Path(data)
    try:
        if path.suffix == ".parquet":
            return datasets.load_dataset("parquet", data_files=str(path), split="train")
        return datasets.load_dataset(data, split=split)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: --data {data} (split {split!r}): {error}") from None


def _show_weights(args: argparse.Namespace) -> int:
    from wm_hub.models.loading import load_backbone
    from wm_hub.training.weight_maps import write_weight_panels

    triplets = _load_triplets(args.data, args.split)
    missing = {"source", "target"} - set(triplets.column_names)
    if missing:
        raise SystemExit(f"error: --data {args.data} has no {sorted(missing)} column(s): not a triplet dataset")
    backbone = load_backbone(args.backbone, device=args.device)
    limit = min(args.limit, len(triplets))
    written = write_weight_panels(backbone, triplets.select(range(limit)), args.out, display_size=args.display_size)
    print(json.dumps({"out": args.out, "panels": [str(path) for path in written]}, indent=2))
    return 0


def _add_data_show_weights(tasks) -> None:
    parser = tasks.add_parser(
        "show-weights",
        help="draw recognition-weight heatmaps (paper Figure 3) for triplets",
        description="For each triplet, write source | target | target overlaid with the FDM recognition weights: the "
        "squared L2 distance between source and target pre-quantisation VQ features per image token (mean 1 per "
        "image). Check that the weights land where the action happens before training with loss_weighting=l2.",
        epilog="example: wm-hub data show-weights --backbone tiny-chameleon --data shapes-triplets --out weights/",
    )
    parser.add_argument(
        "--backbone", required=True, help="backbone folder or Hub id (its VQ encoder is the recognizer)"
    )
    parser.add_argument("--data", required=True, help="Hub-layout folder, Hub dataset id, or a .parquet file")
    parser.add_argument("--split", default="train", help="split to read (default: train)")
    parser.add_argument("--out", required=True, help="output folder for the PNG panels")
    parser.add_argument("--limit", type=int, default=16, help="triplets to draw (default: 16)")
    parser.add_argument("--display-size", type=int, default=256, help="side of each panel tile (default: 256)")
    parser.add_argument("--device", help="torch device (default: CPU)")
    parser.set_defaults(func=_show_weights)


# `wm-hub data <task>`: building datasets and looking at them.
DATA_TASKS: tuple[Callable, ...] = (_add_data_build, _add_data_show_weights)


def _add_data(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="build triplet datasets (Hub layout) and inspect them",
        description="Dataset tasks. Every builder writes the one triplet schema (id, source, target, action, origin, "
        "score, action_class, video, frames) as a folder that datasets.load_dataset(OUT) reads without wm-hub.",
    )
    tasks = parser.add_subparsers(title="data tasks", metavar="<data task>", required=True)
    for add in DATA_TASKS:
        add(tasks)


SUBCOMMANDS: tuple[Callable, ...] = (
    _add_tiny_model,
    _add_convert_vqgan,
    _add_predict,
    _add_demo,
    _add_keyframes,
    _add_data,
)


# Task groups: `wm-hub <group> <task>`; the one-line help of the group.
GROUPS = {
    "data": "build triplet datasets (Hub layout) and inspect them",
    "eval": "evaluate models and predictions (AURORA-BENCH, IDM text metrics, spatial reasoning)",
    "human-eval": "blind best/worst human evaluation: build a study, serve it, score it (paper Table 5)",
    "push": "publish a model or synthetic trajectories to the Hugging Face Hub (one commit, idempotent)",
    "sandbox": "fit the sandbox tokenizer, pretrain the sandbox base, run the sandbox study",
}
DESCRIPTION = (
    "World models from unified vision-language models (Chameleon/Anole, Liquid, Emu3): an inverse dynamics model "
    "bootstraps a forward dynamics model. Run `wm-hub <task> --help` for each task."
)


def command_modules() -> list:
    """The task modules of this package and its subpackages, in name order (none starting with ``_``)."""
    names = sorted(
        info.name
        for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}.")
        if not any(part.startswith("_") for part in info.name.split("."))
    )
    return [importlib.import_module(name) for name in names]


def tasks() -> dict[tuple[str, ...], Task]:
    """Every config-built task, by its command words (reads the modules, imports no config)."""
    return {task.words: task for module in command_modules() for task in getattr(module, "TASKS", ())}


def build_parser(light: bool = False) -> argparse.ArgumentParser:
    """The ``wm-hub`` argument parser with one subparser per task.

    Args:
        light: Give each config-built task only its one-line help, without importing its configs (what
            ``wm-hub --help`` prints); ``False`` builds every task's full parser.
    """
    from wm_hub import __version__

    # The task parsers of a full build are ConfigParsers (trl's TrlParser); the light one imports neither.
    parser_class = argparse.ArgumentParser if light else importlib.import_module("wm_hub.config_parser").ConfigParser
    parser = argparse.ArgumentParser(prog="wm-hub", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"wm-hub {__version__}")
    subparsers = parser.add_subparsers(title="tasks", metavar="<task>", required=True, parser_class=parser_class)
    for add in SUBCOMMANDS:
        add(subparsers)
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, task in tasks().items():
        if len(words) == 2 and words[0] not in groups:
            group = subparsers.add_parser(words[0], help=GROUPS[words[0]], description=GROUPS[words[0]])
            title = f"{words[0]} tasks"
            groups[words[0]] = group.add_subparsers(
                title=title, metavar=f"<{title[:-1]}>", required=True, parser_class=parser_class
            )
        where = groups[words[0]] if len(words) == 2 else subparsers
        if light:
            where.add_parser(words[-1], help=task.help)
        else:
            task.parser(where)
    for module in command_modules():
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wm-hub`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known = tasks()
    for count in (2, 1):
        task = known.get(tuple(argv[:count]))
        if task is not None:
            from wm_hub.config_parser import parse_config

            return task.run(*parse_config(task.parser(), argv[count:]))
    if not argv or argv[0].startswith("-") or argv[0] in GROUPS:  # help, version, or a group without its task
        build_parser(light=True).parse_args(argv)
    args = build_parser().parse_args(argv)
    return args.func(args)
