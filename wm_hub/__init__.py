"""wm-hub: world models from unified vision-language models, the Hugging Face way."""

__version__ = "0.1.0.dev0"

from wm_hub.models import Backbone, load_backbone  # noqa: E402

__all__ = ["Backbone", "__version__", "load_backbone"]
