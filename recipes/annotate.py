"""Annotate key-frame pairs with an inverse dynamics model, one slice of the pairs per process.

    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml recipes/annotate.py \
        --idm outputs/anole-7b-idm --data ucf101-kf --out ucf101-annotated --dtype bfloat16 --batch_size 16
    accelerate launch --config_file recipes/accelerate_configs/cpu2.yaml recipes/annotate.py \
        --config recipes/tiny/annotate.yaml

Every field of :class:`wm_hub.bootstrap.annotate.AnnotateConfig` can be set in a YAML (``--config``) or on the
command line, which overrides the YAML (``--batch_size 16``). Rerun the same command to resume: finished shards are
kept. The same run in one process is ``wm-hub annotate``; see docs/annotation.md.
"""

from wm_hub.bootstrap.annotate import AnnotateConfig, annotate
from wm_hub.config_parser import ConfigParser, parse_config

if __name__ == "__main__":
    (config,) = parse_config(ConfigParser((AnnotateConfig,)))
    summary = annotate(config)
    if summary is not None:
        print(
            f"annotated {summary['annotated']} pairs ({summary['already_done']} already done) on "
            f"{summary['processes']} process(es) at {summary['pairs_per_second']} pairs/s; rows in {summary['out']}"
        )
