"""The model card of a trained world model, rendered from ``model_cards/world_model.md.j2``.

The card is filled from the run summary that :mod:`wm_hub.training.run` writes next to the model
(``training_run.json``): base model, data mixture with sizes, loss weighting, hyper-parameters, final metrics and
the paper's citation. Only those curated values reach the card: no environment, no tokens.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

# model_cards/ is installed as package data next to wm_hub (setup.cfg), so cards render outside a checkout too.
WORLD_MODEL_TEMPLATE = files("model_cards") / "world_model.md.j2"

PAPER_CITATION = """@misc{qiu-bootstrapping-visual-dynamics,
  title  = {Bootstrapping Action-Grounded Visual Dynamics in Unified Vision-Language Models},
  author = {Qiu, Yifu and Ziser, Yftah and Korhonen, Anna and Cohen, Shay B. and Ponti, Edoardo M.},
  url    = {https://github.com/yfqiunlp/vlm-world-model}
}"""

PIPELINE_TAGS = {"fdm": "image-to-image", "idm": "image-text-to-text"}
TASK_TAGS = {"fdm": "forward-dynamics", "idm": "inverse-dynamics"}


def render_model_card(
    run: dict[str, Any],
    model_id: str,
    *,
    results: dict[str, Any] | None = None,
    datasets: list[str] | None = None,
    license: str | None = None,
    adapter_only: bool = False,
) -> ModelCard:
    """The card of a trained IDM/FDM.

    Args:
        run: The run summary (``training_run.json``): ``task``, ``base_model``, ``arch``, ``image_size``,
            ``prompt``, ``mixture``, ``loss``, ``training``, ``lora``, ``metrics``, ``versions``.
        model_id: How users load the model: its Hub id, or the output folder.
        results: Evaluation results (``{benchmark: {metric: value}}``) for an evaluation table
            (:func:`results_rows`).
        datasets: Hub ids of the training datasets (card metadata).
        license: Licence identifier (card metadata).
        adapter_only: The repository holds the LoRA adapter only (``wm-hub push model`` without ``--merge``).

    Returns:
        The card; ``card.save(folder / "README.md")`` writes it.

    Raises:
        FileNotFoundError: The template is missing (a broken install).
    """
    if not WORLD_MODEL_TEMPLATE.is_file():
        raise FileNotFoundError(f"model card template {WORLD_MODEL_TEMPLATE} not found: reinstall wm-hub")
    base_model = run["base_model"]
    method = run.get("method", "sft")  # GRPO runs (wm_hub.training.grpo.run_grpo) say "grpo"
    on_hub = not Path(base_model).expanduser().exists()
    card_data = ModelCardData(
        base_model=base_model if on_hub else None,
        datasets=datasets or None,
        license=license,
        library_name="transformers",
        pipeline_tag=PIPELINE_TAGS[run["task"]],
        tags=["wm-hub", "world-model", TASK_TAGS[run["task"]], "trl", method, *(["lora"] if run["lora"] else [])],
    )
    with as_file(WORLD_MODEL_TEMPLATE) as template_path:
        return ModelCard.from_template(
            card_data,
            template_path=str(template_path),
            run=run,
            model_id=model_id,
            model_name=Path(model_id).name,
            base_model_link=f"[{base_model}](https://huggingface.co/{base_model})" if on_hub else f"`{base_model}`",
            citation=PAPER_CITATION,
            results=results_rows(results) if results else [],
            adapter_only=adapter_only,
        )


def results_rows(results: dict[str, Any]) -> list[tuple[str, str, float]]:
    """``(benchmark, metric, value)`` rows of a results JSON: nested objects give ``a/b`` names, non-numbers are
    skipped (``{"aurora": {"magicbrush": {"judge": 1.2}}}`` -> ``("aurora/magicbrush", "judge", 1.2)``)."""
    rows: list[tuple[str, str, float]] = []

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, (int, float)) and not isinstance(item, bool):
                    rows.append((prefix or "-", str(key), float(item)))
                else:
                    visit(f"{prefix}/{key}" if prefix else str(key), item)

    visit("", results)
    return rows
