"""Train a forward dynamics model (source image + action -> next image) from a YAML recipe.

    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/fdm.py \
        --config recipes/anole-7b/fdm.yaml --model_name_or_path /models/anole-7b --data_root /data

Any recipe field can be overridden on the command line (``--learning_rate 1e-4``); ``--dry_run`` only builds the
data mixture and prints its sizes. See recipes/README.md.
"""

from trl import TrlParser

from wm_hub.training.configs import DataArguments, ModelArguments, WorldModelSFTConfig
from wm_hub.training.run import main

if __name__ == "__main__":
    parser = TrlParser((DataArguments, WorldModelSFTConfig, ModelArguments))
    data_args, training_args, model_args = parser.parse_args_and_config()
    main("fdm", data_args, training_args, model_args)
