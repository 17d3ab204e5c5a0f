"""train/rllib.py's options: one dataclass, its fields the `--help`, checked before anything is written.

The policy-gradient options carry train/sb3.py's names and defaults (read from `SB3Config`, so a
retuned SB3 default moves both scripts): the same command line compares the two on equal terms.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from train.cli import check_options, check_run_options, config_parser, option
from train.run_folder import RunFolder
from train.sb3_config import (
    SB3Config,
    check_dense_reward,
    check_discount,
    check_pretrained_options,
    value_layers,
)

_SB3 = {f.name: f for f in dataclasses.fields(SB3Config)}


def as_sb3(name: str, help_text: str | None = None) -> Any:
    """A field with train/sb3.py's range and default for the option of the same name, and its help
    (or `help_text`, where SB3's would name SB3)."""
    field = _SB3[name]
    bounds = {k: field.metadata.get(k) for k in ("at_least", "above", "below", "at_most", "shown")}
    return option(help_text or field.metadata["help"], default=field.default, **bounds)


@dataclass
class RLlibConfig:
    """Every option of the script."""

    algo: Literal["ppo", "appo", "impala"] = option("the RLlib algorithm (new API stack)", default="ppo")
    num_env_runners: int = option("Ray env runners that sample (0: the driver samples itself)",
                                  default=2, at_least=0)  # fmt: skip
    ray_address: str | None = option("an existing Ray cluster to join (e.g. auto)", default=None,
                                     shown="start a local Ray")  # fmt: skip
    ray_cpus: int = option("CPUs of the local Ray (0: one per env runner, at least 1)", default=0, at_least=0)
    resume: str | None = option("continue this run folder from its last checkpoint (round granularity)",
                                default=None)  # fmt: skip
    pretrained: str | None = as_sb3("pretrained")
    pretrain_preset: Literal["paper", "cpu", "tiny"] = as_sb3("pretrain_preset")
    pretrain_args: str = as_sb3("pretrain_args")
    oracle: str | None = as_sb3("oracle")
    warm_start: bool = as_sb3("warm_start")
    seed: int = as_sb3("seed", "seed of RLlib, the envs, sampling and the evaluation")
    device: Literal["cpu"] = option("torch device of the env's models (RLlib's learner: CPU here)",
                                    default="cpu")  # fmt: skip
    threads: int = option("torch threads of the driver (0: torch's default); each runner uses one",
                          default=0, at_least=0)  # fmt: skip
    out: str = as_sb3("out")
    name: str | None = option("run folder name", default=None, shown="rllib_ALGO_sSEED_TIME")
    rounds: int = as_sb3("rounds", "adversarial rounds: one algo.train() each (the runners sample, the "
                         "learner updates), then the rollout sync and the discriminator training")
    n_envs: int = as_sb3("n_envs", "envs in all (sequences per rollout step), split evenly over the env "
                         "runners; the paper's batch is 64")
    n_steps: int = as_sb3("n_steps")
    batch_size: int = as_sb3("batch_size", "PPO and APPO minibatch, RLlib's minibatch_size (0: half the "
                             "rollout)")
    n_epochs: int = as_sb3("n_epochs", "PPO and APPO epochs over each rollout, RLlib's num_epochs")
    learning_rate: float = as_sb3("learning_rate", "the policy's Adam learning rate, RLlib's lr")
    gamma: float = as_sb3("gamma")
    gae_lambda: float = as_sb3("gae_lambda", "GAE lambda of PPO and APPO, RLlib's lambda_")
    clip_range: float = as_sb3("clip_range", "clip range of PPO and APPO, RLlib's clip_param")
    ent_coef: float = as_sb3("ent_coef", "entropy bonus coefficient, RLlib's entropy_coeff")
    vf_coef: float = as_sb3("vf_coef", "value loss coefficient, RLlib's vf_loss_coeff")
    max_grad_norm: float = as_sb3("max_grad_norm", "gradient-norm clip of the policy, RLlib's grad_clip "
                                  "(by global norm)")
    value_arch: str = as_sb3("value_arch")
    reward_mode: Literal["shaped", "mc", "terminal", "dense"] = as_sb3("reward_mode")
    reward: Literal["discriminator", "oracle"] = as_sb3("reward")
    n_rollouts: int = as_sb3("n_rollouts")
    rollout_update: Literal["copy", "ema", "fixed"] = as_sb3(
        "rollout_update", "the envs' rollout policy: copy (= the RLlib policy, the paper), ema, or fixed "
        "(stays the pre-trained generator)")
    rollout_rate: float = as_sb3("rollout_rate")
    disc_repeats: int = as_sb3("disc_repeats")
    disc_epochs: int = as_sb3("disc_epochs")
    n_negatives: int = as_sb3("n_negatives")
    disc_pretrain_repeats: int = as_sb3("disc_pretrain_repeats")
    disc_embed_dim: int = as_sb3("disc_embed_dim")
    disc_filters: str = as_sb3("disc_filters")
    disc_batch_size: int = as_sb3("disc_batch_size")
    disc_hidden_dim: int = as_sb3("disc_hidden_dim")
    disc_layer_norm: bool = as_sb3("disc_layer_norm")
    disc_embed_dropout: float = as_sb3("disc_embed_dropout")
    disc_l2: float = as_sb3("disc_l2")
    disc_lr: float = as_sb3("disc_lr")
    disc_beta1: float = as_sb3("disc_beta1")
    disc_beta2: float = as_sb3("disc_beta2")
    eval_every: int = option("evaluate and checkpoint (resume point) every this many rounds", default=10,
                             at_least=1)  # fmt: skip
    eval_samples: int = as_sb3("eval_samples")
    temperature: float = as_sb3("temperature")
    diagnostics: bool = as_sb3("diagnostics")
    diag_samples: int = as_sb3("diag_samples")
    diag_q_samples: int = as_sb3("diag_q_samples")
    diag_repeats: int = as_sb3("diag_repeats")
    tensorboard: bool = as_sb3("tensorboard")
    progress: bool = as_sb3("progress")

    def validate(self) -> None:
        """Clear errors for impossible settings, before anything is written."""
        check_options(self)  # types, choices, ranges, finite floats
        check_run_options(self, paths=("pretrained", "oracle", "resume", "ray_address"))
        check_discount(self.gamma, self.gae_lambda)
        check_dense_reward(self.reward, self.reward_mode)
        if self.n_envs % max(self.num_env_runners, 1):
            raise ValueError(f"--n-envs {self.n_envs} must be a multiple of --num-env-runners "
                             f"{self.num_env_runners} (each runner steps n_envs / K envs)")  # fmt: skip
        self.value_layers()

    def value_layers(self) -> tuple[int, ...]:
        return value_layers(self.value_arch)

    def hyperparameters(self, rollout: int, episodes: int = 0) -> dict[str, Any]:
        """`config.training(...)` of the algorithm, from the SB3-named options (`rollout`: the
        tokens of one round, `episodes`: the episodes that end in it). As in SB3's PPO: no KL penalty,
        no value clipping, and as many minibatches per epoch: RLlib's PPO batch holds one artificial
        row per episode (masked out of the loss), so its minibatch grows in proportion."""
        common = {"lr": self.learning_rate, "gamma": self.gamma, "entropy_coeff": self.ent_coef,
                  "vf_loss_coeff": self.vf_coef, "grad_clip": self.max_grad_norm,
                  "grad_clip_by": "global_norm"}  # fmt: skip
        minibatch = self.batch_size or max(rollout // 2, 1)
        if self.algo == "ppo":
            rows = -(-minibatch * (rollout + episodes) // rollout)  # ceil
            return {**common, "lambda_": self.gae_lambda, "clip_param": self.clip_range, "use_kl_loss": False,
                    "vf_clip_param": math.inf, "num_epochs": self.n_epochs,
                    "minibatch_size": rows}  # fmt: skip
        if self.algo == "appo":
            return {**common, "lambda_": self.gae_lambda, "clip_param": self.clip_range, "use_kl_loss": False,
                    "num_epochs": self.n_epochs, "minibatch_size": minibatch}  # fmt: skip
        return common  # IMPALA: V-trace, one pass

    def settings(self) -> dict[str, Any]:
        """What defines the run (everything but where it runs and how it is named)."""
        skip = {"device", "threads", "out", "name", "progress", "resume", "ray_address", "ray_cpus"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


RUNTIME = ("resume", "device", "threads", "progress", "ray_address", "ray_cpus")  # may change on resume


def parse_rllib_config(argv: list[str] | None = None, description: str | None = None) -> RLlibConfig:
    """The options given, over the defaults; with --resume, over the run's own config.json, which an
    option given must not contradict (only where and how it runs may change)."""
    given = vars(config_parser(RLlibConfig, description).parse_args(argv))
    base: dict[str, Any] = {}
    if "resume" in given:
        fields = {f.name for f in dataclasses.fields(RLlibConfig)}
        saved = RunFolder(given["resume"]).resumable_config(fields, "train/rllib.py")
        clash = [f"--{k.replace('_', '-')} {v!r} (run has {saved.get(k)!r})" for k, v in given.items()
                 if k not in RUNTIME and saved.get(k) != v]  # fmt: skip
        if clash:
            raise ValueError(f"{given['resume']} was made with a different config: {', '.join(clash)}")
        base = saved
    config = RLlibConfig(**{**base, **given})
    config.validate()
    if "resume" not in given:
        check_pretrained_options(given)
    return config
