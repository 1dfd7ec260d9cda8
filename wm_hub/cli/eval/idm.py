"""``wm-hub eval idm``: IDM action prediction scored by BLEU, ROUGE-1, ROUGE-L and BERTScore (paper Table 1)."""

from __future__ import annotations

import json

from wm_hub.cli._tasks import Task


def _eval_idm(config, data, metrics) -> int:
    from wm_hub.evaluation.idm import evaluate_idm

    try:
        results = evaluate_idm(config, data, metrics)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    shown = {"overall": results["overall"], "results": config.out, "predictions": results["predictions"]}
    print(json.dumps(shown, indent=2))
    return 0


def _configs() -> tuple[type, ...]:
    from wm_hub.evaluation.generation import GenerationEvalConfig
    from wm_hub.evaluation.text_metrics import TextMetricsConfig
    from wm_hub.evaluation.triplet_sources import EvalTripletsConfig

    return (GenerationEvalConfig, EvalTripletsConfig, TextMetricsConfig)


TASKS = (
    Task(
        words=("eval", "idm"),
        help="IDM action prediction: BLEU, ROUGE-1, ROUGE-L, BERTScore against reference actions (paper Table 1)",
        configs=_configs,
        run=_eval_idm,
        description="Generate the action of every (source, target) pair with an inverse-dynamics model (greedy, "
        "batched) and score it against the reference action: corpus BLEU (sacrebleu), mean ROUGE-1 and ROUGE-L "
        "F-measures (rouge_score) and mean BERTScore (bert_score), per subset and overall, with wm-hub's offline "
        "`evaluate` metric modules. BERTScore is rescaled with bert_score's baseline by default (the paper's 0-1 "
        "scale); a local BERTScore model needs --bertscore-num-layers and --no-bertscore-rescale (or "
        "--bertscore-baseline). Predictions go to OUT's .predictions.jsonl (or --predictions) as they are made: "
        "a rerun only generates the missing ones.\n\n"
        "--data: an AURORA checkout (test.json: AURORA-BENCH), a folder written by `wm-hub data build`, a Hub "
        "dataset id, or a builder's data folder with --builder (its config: --data-config).",
        epilog="examples:\n"
        "  wm-hub eval idm --model my-idm --data AURORA --out idm.json\n"
        "  wm-hub eval idm --model my-idm --data aurora-bench/ --split test --metrics bleu,rouge --out idm.json",
    ),
)
