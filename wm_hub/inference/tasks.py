"""The ``transformers.pipeline`` task names of wm-hub's pipelines."""

FORWARD_DYNAMICS_TASK = "forward-dynamics"
INVERSE_DYNAMICS_TASK = "inverse-dynamics"
