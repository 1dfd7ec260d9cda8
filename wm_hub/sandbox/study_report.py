"""The sandbox study's ``report.md`` and plots, from ``results.json`` (:func:`wm_hub.sandbox.study.run_study`).

Every sentence about a claim is computed from the figures: the report says "reproduced" or "not reproduced" by the
rule it prints next to it, never by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRIC_NAMES = {"whole_image": "whole picture", "changed_cells": "changed cells", "all_cells": "all cells"}
VARIANT_NAMES = {
    "ft": "FT (labelled, standard loss)",
    "no_synthetic": "w/o synthetic data",
    "no_weighting": "w/o loss weighting",
    "full": "full (labelled + IDM-labelled + weighting)",
}
SIGNIFICANCE = 0.05
PLOTS = ("asymmetry.png", "probe.png", "scaling.png", "best_of_n.png", "rollouts.png", "grpo.png")


def _verdict(holds: bool) -> str:
    return "**reproduced**" if holds else "**not reproduced**"


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(row) for row in rows)]


def _asymmetry(part: dict[str, Any]) -> list[str]:
    idm, whole = part["idm_exact_match"], part["fdm"]["whole_image"]
    ahead = sum(i > f for i, f in zip(idm[1:], whole[1:]))
    holds = idm[-1] > whole[-1] and sum(idm[1:]) > sum(whole[1:])
    sized = list(zip(part["idm_exact_match_by_size"], part["fdm_by_size"]["whole_image"]))
    sized_ahead = sum(i > f for i, f in sized)
    by_size = sized[-1][0] > sized[-1][1] and sum(i for i, _ in sized) > sum(f for _, f in sized)
    lines = [
        "## 1. Inverse vs forward dynamics (paper sections 1-2)",
        "",
        "Claim: from the same base, with the same data and budget, the inverse model (two frames -> action) is "
        "learnt faster than the forward model (frame + action -> next frame). Rule: the IDM's exact match is above "
        "the FDM's whole-picture exactness (both: the whole output right) at the end of the budget and on average "
        "over the measured points.",
        "",
        *_table(
            ["steps", "IDM exact match", "FDM whole picture", "FDM changed cells", "FDM all cells"],
            [
                [s, i, w, c, a]
                for s, i, w, c, a in zip(
                    part["steps"], idm, whole, part["fdm"]["changed_cells"], part["fdm"]["all_cells"]
                )
            ],
        ),
        "",
        *_table(
            ["labelled triplets", "IDM exact match", "FDM whole picture", "FDM changed cells"],
            [
                [n, i, w, c]
                for n, i, w, c in zip(
                    part["num_labelled"],
                    part["idm_exact_match_by_size"],
                    part["fdm_by_size"]["whole_image"],
                    part["fdm_by_size"]["changed_cells"],
                )
            ],
        ),
        "",
        f"Outcome: against steps {_verdict(holds)} (IDM ahead at {ahead} of {len(idm) - 1} checkpoints); against "
        f"labelled triplets {_verdict(by_size)} (ahead at {sized_ahead} of {len(sized)} sizes).",
        "",
        "![asymmetry](asymmetry.png)",
    ]
    return lines


def _probe(part: dict[str, Any]) -> list[str]:
    negatives = sorted({n for model in part.values() for d in model.values() for n in d})
    rows = [
        [model, direction, *(rates.get(n, float("nan")) for n in negatives)]
        for model, by_direction in part.items()
        for direction, rates in by_direction.items()
    ]
    mean = {
        model: sum(r for d in by_direction.values() for r in d.values()) / sum(len(d) for d in by_direction.values())
        for model, by_direction in part.items()
    }
    base_chance = abs(mean["base"] - 0.5) <= 0.15
    tuned_above = all(mean[m] > mean["base"] for m in mean if m != "base")
    return [
        "## 2. Trajectory-preference probe (paper section 2)",
        "",
        "Claim: the pretrained base does not prefer real trajectories to manipulated ones (about chance), and "
        "fine-tuning on dynamics does. Rule: the base's mean win rate is within 0.15 of 0.5 and each fine-tuned "
        "model's mean is above the base's. Win rates are fractions of rows where the real trajectory's "
        "log-likelihood is strictly higher.",
        "",
        *_table(["model", "direction", *negatives], rows),
        "",
        "Mean win rate: " + ", ".join(f"{model} {value:.3f}" for model, value in mean.items()) + ".",
        "",
        f"Outcome: base about chance {_verdict(base_chance)}; fine-tuned models above the base "
        f"{_verdict(tuned_above)}.",
        "",
        "![probe](probe.png)",
    ]


def _table4(part: dict[str, Any]) -> list[str]:
    variants, tests = part["variants"], part["wilcoxon_against_full"]
    rows = [
        [VARIANT_NAMES[name], *(f"{v['mean'][m]:.3f} ± {v['std'][m]:.3f}" for m in METRIC_NAMES)]
        for name, v in variants.items()
    ]
    outcomes = []
    for name, test in tests.items():
        better = variants["full"]["mean"]["changed_cells"] > variants[name]["mean"]["changed_cells"]
        significant = test["changed_cells_p"] < SIGNIFICANCE
        outcomes.append(
            f"- full vs {VARIANT_NAMES[name]}: changed cells {variants['full']['mean']['changed_cells']:.3f} vs "
            f"{variants[name]['mean']['changed_cells']:.3f} (p = {test['changed_cells_p']:.3g}), whole pictures "
            f"{variants['full']['mean']['whole_image']:.3f} vs {variants[name]['mean']['whole_image']:.3f} "
            f"(p = {test['whole_image_p']:.3g}): {_verdict(better and significant)}"
        )
    seeds = len(next(iter(variants.values()))["seeds"])
    blank = part.get("blank_actions", 0)  # absent from runs before blank actions were left out
    unlabelled = f", {blank} pairs without an action left out" if blank else ""
    return [
        "## 3. Table 4 analogue: what each part of the method adds",
        "",
        f"FDMs fine-tuned from the base, mean ± std over {seeds} seeds. Synthetic data: the IDM's labels of "
        f"{part['num_kept']} of {part['num_pairs']} video key-frame pairs (stratified top K{unlabelled}; "
        f"{part['label_accuracy']:.3f} of all pairs labelled right).",
        "",
        *_table(["FDM", *METRIC_NAMES.values()], rows),
        "",
        "Claim: the full method beats each ablation. Rule: higher mean changed-cell accuracy and a paired "
        f"Wilcoxon test over the held-out triplets (seed means) with p < {SIGNIFICANCE}.",
        "",
        *outcomes,
    ]


def _scaling(part: dict[str, Any], noise: float) -> list[str]:
    k = part["k"]
    rows = [
        [kk, s["whole_image"], s["changed_cells"], r["whole_image"], r["changed_cells"]]
        for kk, s, r in zip(k, part["stratified"], part["random"])
    ]
    labels = part["num_pairs"] - part.get("blank_actions", 0)  # pairs the IDM wrote no action for are never kept
    rows.append([f"all ({labels})", part["all"]["whole_image"], part["all"]["changed_cells"], "", ""])
    pairs = zip(part["stratified"][1:], part["random"][1:])
    stratified_wins = sum(s["changed_cells"] > r["changed_cells"] for s, r in pairs)
    grows = part["stratified"][-1]["changed_cells"] > part["stratified"][0]["changed_cells"]
    labellers = part["labellers"]
    changed = [row["fdm"]["changed_cells"] for row in labellers]
    better_labeller = changed[-1] > changed[0] and all(a <= b for a, b in zip(changed, changed[1:]))
    return [
        "## 4. Synthetic-data scaling (Algorithm 1)",
        "",
        *_table(
            ["K", "stratified: whole", "stratified: changed", "random: whole", "random: changed"],
            rows,
        ),
        "",
        *_table(
            ["labelling IDM (steps)", "IDM exact match", "video labels right", "FDM whole", "FDM changed cells"],
            [
                [
                    row["idm_step"],
                    row["idm_exact_match"],
                    row["label_accuracy"],
                    row["fdm"]["whole_image"],
                    row["fdm"]["changed_cells"],
                ]
                for row in labellers
            ],
        ),  # fmt: skip
        "",
        f"Claims and outcomes: more IDM-labelled pairs help (largest K above K = 0 on changed cells) "
        f"{_verdict(grows)}; stratified top K beats random K ({stratified_wins} of {len(k) - 1} values of K) "
        f"{_verdict(stratified_wins * 2 > len(k) - 1)}; a better labeller gives a better FDM (changed cells never "
        f"drop as the labeller trains longer, and end higher) {_verdict(better_labeller)}. One seed per point: read "
        f"the differences against the seed-to-seed std of the full method in Table 4 ({noise:.3f} of changed cells).",
        "",
        "![scaling](scaling.png)",
    ]


def _best_of_n(part: dict[str, Any]) -> list[str]:
    keys = [(key, metric) for metric in ("changed_cells", "whole_image") for key in ("verifier", "oracle", "random")]
    rows = [[n, *(part[key][metric][i] for key, metric in keys)] for i, n in enumerate(part["n"])]
    gain = part["verifier"]["changed_cells"][-1] > part["verifier"]["changed_cells"][0]
    above_random = part["verifier"]["changed_cells"][-1] > part["random"]["changed_cells"][-1]
    return [
        "## 5. Best-of-N with the IDM verifier (paper Figure 4)",
        "",
        *_table(
            [
                "N",
                "verifier: changed",
                "oracle: changed",
                "random: changed",
                "verifier: whole",
                "oracle: whole",
                "random: whole",
            ],
            rows,
        ),  # fmt: skip
        "",
        f"Claims and outcomes: the verifier's pick improves with N (largest N above N = 1, changed cells) "
        f"{_verdict(gain)}; it beats a random choice at the largest N {_verdict(above_random)}. The oracle (the "
        "candidate with most cells right) bounds what any verifier can reach.",
        "",
        "![best of N](best_of_n.png)",
    ]


def _rollouts(part: dict[str, Any]) -> list[str]:
    modes = [mode for mode in ("greedy", "sampled", "verified", "copy") if mode in part]
    rows = [[step, *(part[mode]["all_cells"][i] for mode in modes)] for i, step in enumerate(part["steps"])]
    verified_helps = part["verified"]["all_cells"][-1] > part["sampled"]["all_cells"][-1]
    decays = part["greedy"]["all_cells"][-1] < part["greedy"]["all_cells"][0]
    return [
        "## 6. Multi-step rollouts",
        "",
        "All-cell accuracy after each chained action (the prediction of step i is the source of step i + 1).",
        "",
        *_table(["actions", *modes], rows),
        "",
        f"Outcomes: errors compound (greedy accuracy lower after the last action than after the first) "
        f"{_verdict(decays)}; verifying each step beats sampling one candidate after the last action "
        f"{_verdict(verified_helps)}.",
        "",
        "![rollouts](rollouts.png)",
    ]


def _grpo(part: dict[str, Any]) -> list[str]:
    fdm, idm = part["fdm"], part["idm"]
    modes = list(fdm["mean"]["sft"])
    names = {"sft": "SFT (the full method's FDM)", "grpo": "SFT + GRPO", "sft_matched": "SFT, GRPO's time as steps"}
    header = ["FDM", *(f"{mode}: {METRIC_NAMES[m]}" for mode in modes for m in ("changed_cells", "whole_image"))]
    rows = [
        [
            names[name],
            *(
                f"{fdm['mean'][name][mode][m]:.3f} ± {fdm['std'][name][mode][m]:.3f}"
                for mode in modes
                for m in ("changed_cells", "whole_image")
            ),
        ]
        for name in names
    ]
    idm_names = {**names, "sft": "SFT (the labelling IDM)"}
    idm_rows = [[idm_names[name], f"{idm['mean'][name]:.3f} ± {idm['std'][name]:.3f}"] for name in names]
    seconds = part["seconds_per_step"]

    def improves(values: dict[str, float], over: str) -> str:
        return _verdict(values["grpo"] > values[over])

    changed = {mode: {name: fdm["mean"][name][mode]["changed_cells"] for name in names} for mode in modes}
    claims = [
        "Claims and outcomes: GRPO improves on its SFT model (SWIRL; rule: GRPO's mean above SFT's), FDM changed "
        "cells " + "; ".join(f"{mode} {improves(values, 'sft')}" for mode, values in changed.items()),
        f", IDM exact match {improves(idm['mean'], 'sft')}; and beyond what the same wall time of SFT buys (rule: "
        "GRPO's mean above the time-matched SFT's), FDM changed cells "
        + "; ".join(f"{mode} {improves(values, 'sft_matched')}" for mode, values in changed.items()),
        f", IDM exact match {improves(idm['mean'], 'sft_matched')}.",
    ]
    return [
        "## 7. GRPO from the verifier (the authors' follow-up, SWIRL)",
        "",
        f"Each seed's full-method FDM trained {part['grpo_steps']} GRPO steps (`recipes/sandbox/grpo.yaml`: 8 samples "
        "per prompt, LoRA, KL to the SFT model), rewarded by the labelling IDM's per-token mean log-likelihood of the "
        "action; the labelling IDM trained as long, rewarded by each seed's FDM's likelihood of the target. The "
        "control gives SFT GRPO's wall time as more steps of its own recipe (FDM: "
        f"{part['matched_extra_steps']['fdm']} extra steps, IDM: {part['matched_extra_steps']['idm']}). Seconds per "
        "step: FDM GRPO "
        f"{seconds['fdm_grpo']:.2f} against SFT {seconds['fdm_sft']:.2f}, IDM GRPO {seconds['idm_grpo']:.2f} against "
        f"SFT {seconds['idm_sft']:.2f}. Mean ± std over seeds; `n1` is one sample, `best_of_N` the IDM verifier's "
        "pick of N samples.",
        "",
        *_table(header, rows),
        "",
        *_table(["IDM", "exact match"], idm_rows),
        "",
        "".join(claims),
        "",
        "![GRPO rewards](grpo.png)",
    ]


def study_report(results: dict[str, Any], plots: list[str]) -> str:
    """``report.md``: one section per claim with its table, its rule and its computed outcome."""
    config = results["config"]
    lines = [
        "# The paper's claims in the sandbox",
        "",
        f"From the sandbox base `{Path(config['base']).name}`; {config['num_eval']} held-out triplets of the "
        f"{results['world']['image_size']} px, {results['world']['grid']} x {results['world']['grid']} shapes world; "
        f"FDM runs of {config['fdm_steps']} steps, learning curves of {config['curve_steps']}; "
        f"{results['wall_times']['total_s'] / 60:.1f} min in all (summed over the runs that resumed it). Figures are "
        "fractions; greedy decoding unless said. Reproduce: `wm-hub sandbox study --out study`.",
        "",
    ]
    noise = results["table4"]["variants"]["full"]["std"]["changed_cells"]
    lines += [*_asymmetry(results["asymmetry"]), "", *_probe(results["probe"]), "", *_table4(results["table4"]), ""]
    lines += [*_scaling(results["scaling"], noise), "", *_best_of_n(results["best_of_n"]), ""]
    lines += [*_rollouts(results["rollouts"]), "", *_grpo(results["grpo"]), ""]
    missing = [name for name in PLOTS if name not in plots]
    if missing:
        lines += [f"(Plots not written: {', '.join(missing)}.)", ""]
    return "\n".join(lines)


def plot_study(results: dict[str, Any], out: str | Path) -> list[Path]:
    """Write the :data:`PLOTS`: one per part."""
    out = Path(out)
    paths = []

    def save(figure, name: str) -> None:
        figure.tight_layout()
        tmp = out / f".{name}.tmp.png"
        figure.savefig(tmp, dpi=110)
        plt.close(figure)
        tmp.replace(out / name)
        paths.append(out / name)

    part = results["asymmetry"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(part["steps"], part["idm_exact_match"], "o-", label="IDM exact match")
    for metric in ("whole_image", "changed_cells"):
        left.plot(part["steps"], part["fdm"][metric], "s--", label=f"FDM {METRIC_NAMES[metric]}")
    left.set(xlabel="training steps", ylabel="held-out accuracy", ylim=(0, 1), title="against steps")
    right.plot(part["num_labelled"], part["idm_exact_match_by_size"], "o-", label="IDM exact match")
    for metric in ("whole_image", "changed_cells"):
        right.plot(part["num_labelled"], part["fdm_by_size"][metric], "s--", label=f"FDM {METRIC_NAMES[metric]}")
    right.set(xscale="log", xlabel="labelled triplets", ylim=(0, 1), title="against labelled data")
    left.legend(fontsize=8)
    save(figure, "asymmetry.png")

    part = results["probe"]
    labels = [f"{m}/{d[:3]}" for m, by in part.items() for d in by]
    negatives = sorted({n for by in part.values() for d in by.values() for n in d})
    figure, axis = plt.subplots(figsize=(10, 3.8))
    width = 0.8 / len(negatives)
    for index, negative in enumerate(negatives):
        values = [d.get(negative, 0.0) for by in part.values() for d in by.values()]
        axis.bar([i + index * width for i in range(len(labels))], values, width, label=negative)
    axis.axhline(0.5, color="grey", linestyle=":")
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    axis.set(ylabel="real trajectory preferred", ylim=(0, 1), title="trajectory-preference probe")
    axis.legend(fontsize=8, ncol=len(negatives))
    save(figure, "probe.png")

    part = results["scaling"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style in (("stratified", "o-"), ("random", "s--")):
        left.plot(part["k"], [row["changed_cells"] for row in part[key]], style, label=f"{key} K")
    labels = part["num_pairs"] - part.get("blank_actions", 0)
    left.plot([labels], [part["all"]["changed_cells"]], "k*", markersize=10, label="all pairs")
    left.set(xlabel="IDM-labelled pairs K", ylabel="FDM changed cells", title="against K")
    left.legend(fontsize=8)
    labellers = part["labellers"]
    right.plot([r["label_accuracy"] for r in labellers], [r["fdm"]["changed_cells"] for r in labellers], "o-")
    for row in labellers:
        right.annotate(f"IDM step {row['idm_step']}", (row["label_accuracy"], row["fdm"]["changed_cells"]), fontsize=8)
    right.set(xlabel="video labels right", ylabel="FDM changed cells", title="against the labeller")
    save(figure, "scaling.png")

    part = results["best_of_n"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, metric in ((left, "changed_cells"), (right, "whole_image")):
        for key, style in (("verifier", "o-"), ("oracle", "^:"), ("random", "s--")):
            axis.plot(part["n"], part[key][metric], style, label=key)
        axis.set(xscale="log", xlabel="candidates N", ylabel=METRIC_NAMES[metric], ylim=(0, 1))
        axis.set_xticks(part["n"], [str(n) for n in part["n"]])
    left.legend(fontsize=8)
    save(figure, "best_of_n.png")

    part = results["rollouts"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, metric in ((left, "all_cells"), (right, "whole_image")):
        for mode in ("greedy", "sampled", "verified", "copy"):
            axis.plot(part["steps"], part[mode][metric], "o-" if mode != "copy" else "k:", label=mode)
        axis.set(xlabel="chained actions", ylabel=METRIC_NAMES[metric], ylim=(0, 1))
    left.legend(fontsize=8)
    save(figure, "rollouts.png")

    part = results["grpo"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, task, verifier in zip(
        axes, ("fdm", "idm"), ("IDM log-likelihood of the action", "FDM log-likelihood of the target")
    ):
        for seed, rewards in part["rewards"][task].items():
            window = min(10, len(rewards))
            if not window:
                continue
            smooth = [sum(rewards[i : i + window]) / window for i in range(len(rewards) - window + 1)]
            (line,) = axis.plot(range(window, len(rewards) + 1), smooth, label=f"seed {seed} (mean of {window})")
            axis.plot(range(1, len(rewards) + 1), rewards, alpha=0.3, color=line.get_color())
        axis.set(xlabel="GRPO step", ylabel=f"reward: {verifier}", title=f"{task.upper()} GRPO")
        axis.legend(fontsize=8)
    save(figure, "grpo.png")
    return paths
