"""GRPO from the verifier: an SFT FDM (or IDM) trained on the rewards of a frozen IDM (or FDM), from a YAML recipe.

    accelerate launch recipes/grpo.py --config recipes/anole-7b/grpo.yaml --model_name_or_path outputs/anole-7b-fdm \
        --reward_model outputs/anole-7b-idm --data_root /data

The recipe holds the data mixture (as the SFT recipes do: only the triplets' source, target and action are used),
TRL's ``GRPOConfig`` fields (``num_generations``, ``beta``, ``temperature``...), the LoRA settings and the reward
clamp. See docs/grpo.md.
"""

from trl import GRPOConfig

from wm_hub.config_parser import ConfigParser, config_error, parse_config
from wm_hub.training.configs import DataArguments, ModelArguments, check_run_settings
from wm_hub.training.grpo import GRPOScriptArguments, run_grpo, task_reward

if __name__ == "__main__":
    parser = ConfigParser((DataArguments, GRPOConfig, ModelArguments, GRPOScriptArguments))
    data_args, grpo_args, model_args, script_args = parse_config(parser)
    try:
        task_reward(data_args.task, script_args.reward)
        check_run_settings(grpo_args, model_args.model_name_or_path, data_args, reward_model=script_args.reward_model)
    except ValueError as error:
        config_error(str(error))
    run_grpo(data_args, grpo_args, model_args, script_args)
