"""train/sb3.py's options: one dataclass, its fields the `--help` (defaults finish on a 2-core CPU in
under 30 minutes), checked before anything is written."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from train.cli import (
    MAX_LR,
    MAX_SCALE,
    MIN_TEMPERATURE,
    check_options,
    check_run_options,
    config_parser,
    option,
)
from train.diagnostics import DIAG_Q_SAMPLES_HELP, DIAG_REPEATS_HELP, DIAG_SAMPLES_HELP, DIAGNOSTICS_HELP
from train.lineage import check_source, source_settings
from train.presets import PRESETS

CPU_FILTERS: str = PRESETS["cpu"]["disc_filters"]  # one place for the cpu preset


def check_discount(gamma: float, gae_lambda: float) -> None:
    """--gamma and --gae-lambda each lie in [0, 1] (train/sb3.py's and train/rllib.py's)."""
    if not 0 <= gamma <= 1 or not 0 <= gae_lambda <= 1:
        raise ValueError(f"--gamma and --gae-lambda must lie in [0, 1], got {gamma}, {gae_lambda}")


def check_dense_reward(reward: str, reward_mode: str) -> None:
    """--reward-mode dense rewards every prefix with a prefix discriminator: --reward oracle has none."""
    if reward_mode == "dense" and reward != "discriminator":
        raise ValueError(f"--reward-mode dense rewards with a prefix discriminator; --reward {reward} scores "
                         "finished sequences only: use another --reward-mode")  # fmt: skip


def value_layers(value_arch: str) -> tuple[int, ...]:
    """The hidden sizes of --value-arch: comma-separated ints >= 1 ('' for none)."""
    try:
        layers = tuple(int(n) for n in value_arch.split(",") if n.strip())
    except ValueError:
        layers = (0,)
    if any(n < 1 for n in layers):
        raise ValueError(f"--value-arch must be comma-separated sizes >= 1, got {value_arch!r}")
    return layers


@dataclass
class SB3Config:
    """Every option of the script (the defaults finish on a 2-core CPU in under 30 minutes)."""

    algo: Literal["ppo", "a2c", "maskable_ppo", "recurrent_ppo"] = option("the SB3 algorithm", default="ppo")
    pretrained: str | None = option(
        "a train/pretrain.py or train/adversarial.py run folder to start from (its pretrained.pt, else "
        "mle.pt); its data, oracle and sizes come with it", default=None,
        shown="pre-train in place, with --pretrain-preset")  # fmt: skip
    pretrain_preset: Literal["paper", "cpu", "tiny"] = option(
        "preset of the in-place pre-training (train/pretrain.py --preset X), when --pretrained is not "
        "given", default="cpu")  # fmt: skip
    pretrain_args: str = option("more options (train/pretrain.py's) for the in-place pre-training, e.g. "
                              "--pretrain-args='--mle-epochs 20'", default="")  # fmt: skip
    oracle: str | None = option("the paper's oracle parameter file (.npz or .pkl) for the in-place "
                              "pre-training; with --pretrained, that run's oracle", default=None,
                              shown="the built-in seeded N(0,1) oracle")  # fmt: skip
    load: str | None = option("continue this saved SB3 model (.zip of the same --algo: its weights, "
                            "optimizer state and step counts; every other setting is this run's) instead of "
                            "warm-starting from the generator", default=None)  # fmt: skip
    warm_start: bool = option("start the policy as the pre-trained generator (--no-warm-start: a fresh "
                            "policy of its shape)", default=True)  # fmt: skip
    seed: int = option("seed of SB3, the env, sampling and the evaluation", default=0)
    device: str = option("torch device of the models", default="cpu")
    threads: int = option("CPU threads for torch (0: torch's default, one per core)", default=0, at_least=0)
    out: str = option("folder holding run folders", default="runs")
    name: str | None = option("run folder name", default=None, shown="sb3_ALGO_sSEED_TIME")
    rounds: int = option("SB3 updates (rollout + gradient steps), each followed by the rollout sync and the "
                       "discriminator training", default=40, at_least=1)  # fmt: skip
    n_envs: int = option("parallel envs (sequences per rollout step); the paper's batch is 64",
                         default=64, at_least=1)  # fmt: skip
    n_steps: int = option("rollout length per env per update (0: T, one episode per env)",
                          default=0, at_least=0)  # fmt: skip
    batch_size: int = option("PPO minibatch (0: half the rollout); ignored by A2C", default=0, at_least=0)
    n_epochs: int = option("PPO epochs over each rollout; ignored by A2C", default=4, at_least=1)
    learning_rate: float = option("the policy's learning rate (Adam; A2C: RMSprop)", default=1e-3, above=0,
                                  at_most=MAX_LR)
    gamma: float = option("discount; 1 with shaped rewards (the return is D(y))", default=1.0)
    gae_lambda: float = option("GAE lambda", default=0.95)
    clip_range: float = option("PPO clip range; ignored by A2C", default=0.2, above=0)
    ent_coef: float = option("entropy bonus coefficient", default=0.0, at_least=0, at_most=MAX_SCALE)
    vf_coef: float = option("value loss coefficient", default=0.5, at_least=0, at_most=MAX_SCALE)
    max_grad_norm: float = option("gradient-norm clip of the policy", default=0.5, above=0)
    value_arch: str = option("hidden sizes of the value MLP, comma-separated ('' for none)", default="64")
    reward_mode: Literal["shaped", "mc", "terminal", "dense"] = option(
        "shaped (r_t = Q_t - Q_{t-1}), mc (r_t = Q_t: needs --gamma 0), terminal, or dense (a prefix "
        "discriminator's 2 sigmoid(D_t) - 1 at every step, no search; ScratchGAN's --gamma 0.23)",
        default="shaped")  # fmt: skip
    n_rollouts: int = option("Monte Carlo completions per prefix (N)", default=8, at_least=1)
    rollout_update: Literal["copy", "ema", "fixed"] = option(
        "the env's rollout policy: copy (= the SB3 policy, the paper), ema, or fixed (stays the pre-trained "
        "generator)", default="copy")  # fmt: skip
    rollout_rate: float = option("ema rate: beta <- rate*beta + (1-rate)*theta", default=0.8,
                                 at_least=0, below=1)  # fmt: skip
    reward: Literal["discriminator", "oracle"] = option(
        "what scores complete sequences: discriminator (SeqGAN) or oracle (the oracle's own likelihood: a "
        "perfect discriminator, the upper bound; no discriminator is trained)", default="discriminator")
    mask_tokens: str = option("maskable_ppo: comma-separated token ids the policy may never choose (the "
                            "evaluation, the rollout policy and the negatives use the unmasked distribution)",
                            default="")  # fmt: skip
    disc_repeats: int = option("discriminator trainings {negatives, epochs} per round (0: a fixed D)",
                             default=1, at_least=0)  # fmt: skip
    disc_epochs: int = option("epochs over each set of real + negatives", default=1, at_least=1)
    n_negatives: int = option("negatives per discriminator training set", default=4992, at_least=1)
    disc_pretrain_repeats: int = option("discriminator pre-training here, where the source has none: times "
                                      "{negatives, epochs}", default=10, at_least=0)  # fmt: skip
    disc_embed_dim: int = option("embedding size of a discriminator made here", default=32, at_least=1)
    disc_filters: str = option("filters of a discriminator made here: 'auto' (the cpu preset's that fit T: "
                             f"{CPU_FILTERS}), 'paper', or width:filters pairs", default="auto")  # fmt: skip
    disc_batch_size: int = option("discriminator minibatch", default=64, at_least=1)
    disc_hidden_dim: int = option("--reward-mode dense: LSTM size of a prefix discriminator made here",
                                  default=128, at_least=1)  # fmt: skip
    disc_layer_norm: bool = option("--reward-mode dense: layer norm on its gates", default=True)
    disc_embed_dropout: float = option("--reward-mode dense: dropout on its embedding matrix", default=0.1,
                                       at_least=0, below=1)  # fmt: skip
    disc_l2: float = option("--reward-mode dense: L2 weight on its every weight", default=1e-6, at_least=0,
                            at_most=MAX_SCALE)
    disc_lr: float = option("--reward-mode dense: its Adam learning rate", default=1e-3, above=0,
                            at_most=MAX_LR)
    disc_beta1: float = option("--reward-mode dense: its Adam beta1", default=0.5, at_least=0, below=1)
    disc_beta2: float = option("--reward-mode dense: its Adam beta2", default=0.999, at_least=0, below=1)
    eval_every: int = option("evaluate (and save model.zip) every this many rounds", default=10, at_least=1)
    eval_samples: int = option("generator samples for NLL-oracle", default=9984, at_least=1)
    temperature: float = option("sampling temperature of the evaluation", default=1.0,
                                at_least=MIN_TEMPERATURE)
    diagnostics: bool = option(DIAGNOSTICS_HELP, default=True)
    diag_samples: int = option(DIAG_SAMPLES_HELP, default=1000, at_least=2)
    diag_q_samples: int = option(DIAG_Q_SAMPLES_HELP, default=64, at_least=2)
    diag_repeats: int = option(DIAG_REPEATS_HELP, default=2, at_least=2)
    tensorboard: bool = option("write TensorBoard logs under RUN/tb", default=True)
    progress: bool = option("show progress bars", default=True)

    def validate(self) -> None:
        """Clear errors for impossible settings, before anything is written."""
        check_options(self)  # types, choices and ranges
        check_run_options(self, paths=("pretrained", "load", "oracle"))
        check_discount(self.gamma, self.gae_lambda)
        check_dense_reward(self.reward, self.reward_mode)
        if self.mask_tokens and self.algo != "maskable_ppo":
            raise ValueError("--mask-tokens needs --algo maskable_ppo")
        self.masked_tokens()
        self.value_layers()

    def masked_tokens(self) -> list[int]:
        try:
            return [int(t) for t in self.mask_tokens.split(",") if t.strip()]
        except ValueError:
            raise ValueError(
                f"--mask-tokens must be comma-separated token ids, got {self.mask_tokens!r}"
            ) from None

    def value_layers(self) -> tuple[int, ...]:
        return value_layers(self.value_arch)

    def settings(self) -> dict[str, Any]:
        """What defines the run (everything but where it runs and how it is named)."""
        skip = {"device", "threads", "out", "name", "progress"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


def check_pretrained_options(given: Mapping[str, Any]) -> None:
    """A run started from another (--pretrained) takes its pre-training, data and oracle: the in-place
    pre-training's options, and an --oracle other than the source's, are errors naming the option (the
    rule of train/adversarial.py's --init-from, `train.lineage`)."""
    if given.get("pretrained") is None:
        return
    origin = f"--pretrained {given['pretrained']}"
    for key in ("pretrain_preset", "pretrain_args"):
        if key in given:
            raise ValueError(f"--{key.replace('_', '-')} applies to the in-place pre-training: {origin} "
                             "brings its own (omit one of them)")  # fmt: skip
    if "oracle" in given:
        source = source_settings("--pretrained", given["pretrained"])
        check_source({"oracle": given["oracle"]}, source, origin)


def parse_sb3_config(argv: list[str] | None = None, description: str | None = None) -> SB3Config:
    given = vars(config_parser(SB3Config, description).parse_args(argv))
    config = SB3Config(**given)
    config.validate()
    check_pretrained_options(given)
    return config
