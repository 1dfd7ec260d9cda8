"""Train an inverse dynamics model (source image + next image -> action text) from a YAML recipe.

    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/idm.py \
        --config recipes/anole-7b/idm.yaml --model_name_or_path /models/anole-7b --data_root /data

Any recipe field can be overridden on the command line (``--learning_rate 1e-4``); ``--dry_run`` only builds the
data mixture and prints its sizes. ``wm-hub train idm --config ...`` launches the same (see recipes/README.md).
"""

from wm_hub.cli.train import train

if __name__ == "__main__":
    train("idm")
