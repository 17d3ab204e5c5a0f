"""One run of the SeqGAN experiment: its models, data, environment, optimisers and progress, its
checkpoints (exact resume), and `run_experiment`, which takes a config from start to finish.

Randomness has one generator per purpose, each seeded from --seed (`train.rng.derive_seed`), so no
purpose shifts another's numbers (see `Experiment`).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from agents.learner import Learner
from agents.mle import ContinuedMLE, MLEConfig, MLETrainer
from agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_env.checkpoint import load_weights, model_entry, save_checkpoint
from seqgan_env.devices import resolve_device
from seqgan_env.discriminator import DiscriminatorConfig, SequenceScorer
from seqgan_env.optim_state import load_optimizer_state
from seqgan_env.precision import Precision, generator_precision, resolve_precision
from seqgan_env.rewards import MonteCarloSearch
from seqgan_env.scorers import BLEUScorer, OracleScorer
from seqgan_env.text import Vocabulary, decode
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorSchedule, DiscriminatorTrainingVectorWrapper
from train.config import Config
from train.dense import run_discriminator
from train.diagnostics import has_signal, measure_signal, signal_scalars
from train.evaluation import Evaluator
from train.plots import plot_learning_curve, plot_signal
from train.reproducibility import machine
from train.rng import derive_seed, seeded_rng
from train.run_folder import RunFolder
from train.run_state import RUN_STATE_VERSION
from train.sources import TextData
from train.stopping import signals_held


class Experiment:
    """The models, data, optimisers and progress of one run, and its checkpoints.

    Randomness has one generator per purpose, each seeded from --seed (`derive_seed`), so no purpose
    shifts another's numbers: initialisation and data on the CPU (the same models and data on any
    device), training draws on the device (`rng`: MLE and discriminator minibatches, negatives, the
    agent's tokens), the environment's own generator (Monte Carlo completions), and a fresh generator
    for each evaluation. Dropout draws from torch's global generator; the checkpoints hold every state.
    """

    def __init__(
        self, cfg: Config, run: RunFolder, oracle: TokenLSTM | None, text: TextData | None = None
    ) -> None:
        self.cfg = cfg
        self.run = run
        self.device = resolve_device(cfg.device)
        init = seeded_rng(derive_seed(cfg.seed, "init"))  # CPU
        self.rng = seeded_rng(derive_seed(cfg.seed, "train"), self.device)
        # Text runs: sequences end with <eos> and are padded after it; oracle runs have fixed length.
        self.vocabulary: Vocabulary | None = None if text is None else text.vocabulary
        self.eos_id = None if text is None else text.eos_id
        self.pad_id = None if text is None else text.pad_id
        gen_config = TokenLSTMConfig(cfg.vocab_size, cfg.seq_len, cfg.gen_embed_dim, cfg.gen_hidden_dim)
        self.generator = TokenLSTM(gen_config, rng=init).to(self.device)
        self.rollout_policy = copy.deepcopy(self.generator)  # beta = theta until the adversarial phase
        # The diagnostics' Q estimates: the search replays its CUDA graphs from one evaluation to the next.
        self.signal_search = MonteCarloSearch(self.rollout_policy, cfg.n_rollouts)
        disc_config = DiscriminatorConfig(
            cfg.vocab_size, cfg.seq_len, cfg.disc_embed_dim, cfg.filters(), cfg.disc_dropout, lr=cfg.disc_lr
        )
        self.discriminator = run_discriminator(cfg, disc_config, init).to(self.device)
        # Real and held-out data: independent oracle samples (NLL-test never sees training data), or
        # the corpus's seeded split.
        if text is None:
            assert oracle is not None
            data_rng = seeded_rng(derive_seed(cfg.seed, "data"))  # CPU
            oracle = oracle.cpu()
            self.real = oracle.sample(cfg.n_real, data_rng)
            self.test = oracle.sample(cfg.n_test, data_rng)
        else:
            self.real, self.test = text.real, text.test
        self.oracle = None if oracle is None else oracle.to(self.device)
        self.evaluator = Evaluator(self.oracle, self.vocabulary, cfg.temperature, cfg.eval_samples,
                                   cfg.bleu_samples, cfg.self_bleu_samples,
                                   dense=cfg.reward_mode == "dense")  # fmt: skip
        mle_config = MLEConfig(cfg.mle_lr, cfg.batch_size, cfg.grad_clip)
        self.mle = MLETrainer(self.generator, mle_config, pad_id=self.pad_id)
        self._use_precision(resolve_precision(cfg.precision, self.device))
        # PG-BLEU: BLEU against the training data scores the sequences in place of the discriminator;
        # the oracle's own likelihood is the perfect discriminator (the upper bound).
        self.scorer: SequenceScorer | None = None
        if cfg.reward == "bleu":
            self.scorer = BLEUScorer(self.real, cfg.bleu_n, self.eos_id, self.pad_id)
        elif cfg.reward == "oracle":
            assert self.oracle is not None
            self.scorer = OracleScorer(self.oracle)
        self.vector_env = SeqGANVectorEnv(
            num_envs=cfg.pg_batch, rollout_policy=self.rollout_policy, discriminator=self.discriminator,
            n_rollouts=cfg.n_rollouts, reward_mode=cfg.reward_mode if cfg.mode == "seqgan" else "terminal",
            oracle_seed=None, device=cfg.device, eos_id=self.eos_id, scorer=self.scorer,
            vocabulary=None if self.vocabulary is None else self.vocabulary.tokens,
        )
        self.envs = DiscriminatorTrainingVectorWrapper(
            self.vector_env,
            real_data=self.real,
            sampler=lambda n: self.generator.sample(n, self.rng, eos_id=self.eos_id, pad_id=self.pad_id),
            schedule=DiscriminatorSchedule(
                None, cfg.disc_repeats, cfg.n_negatives, cfg.disc_epochs, cfg.disc_batch
            ),
            rng=self.rng,
        )
        self.envs.reset(seed=derive_seed(cfg.seed, "env"))  # seeds the env's own sampler
        self.agent = ReinforceAgent(
            self.generator, self.rollout_policy,
            ReinforceConfig(cfg.pg_lr, cfg.grad_clip, cfg.rollout_update, cfg.rollout_rate,
                            cfg.constant_reward if cfg.mode == "constant" else None,
                            baseline=cfg.baseline, normalize=cfg.normalize, gamma=cfg.gamma,
                            baseline_decay=cfg.baseline_decay, betas=(cfg.pg_beta1, cfg.pg_beta2)),
            rng=self.rng,
        )
        self.stage, self.progress = "mle", 0
        self.saved_at: tuple[str, int] | None = None  # (stage, progress) of the last checkpoint
        self.generator_updates = 0
        self.metrics: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self._t0 = time.monotonic()

    def learner(self) -> Learner:
        """What takes each round's generator update: the REINFORCE agent (SeqGAN, and the constant
        reward control), or continued MLE on the real data (the other control)."""
        if self.cfg.mode == "mle":
            return ContinuedMLE(self.mle, self.real, self.rng, self.rollout_policy)
        return self.agent

    # --- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit (every random state included)."""
        cuda = self.device.type == "cuda"
        return {
            "config": self.cfg.run_settings(), "run_state_version": RUN_STATE_VERSION,
            "stage": self.stage, "progress": self.progress, "generator_updates": self.generator_updates,
            "generator": model_entry(self.generator), "rollout_policy": model_entry(self.rollout_policy),
            "discriminator": model_entry(self.discriminator),
            "optimizers": {"mle": self.mle.optimizer.state_dict(), "pg": self.agent.optimizer.state_dict()},
            "discriminator_updater": self.envs.updater.state_dict(),
            "value_baseline": None if self.agent.value is None else {
                "state_dict": self.agent.value.state_dict(),
                "optimizer": self.agent.value.optimizer.state_dict()},
            "ema_baseline": torch.tensor(self.agent.ema_baseline, dtype=torch.float64),  # checked finite
            "rng": {"device": self.device.type, "train": self.rng.get_state(),
                    "env": self.vector_env._torch_rng.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(self.device) if cuda else None},
            "data": {"real": self.real, "test": self.test},
            "metrics": self.metrics, "elapsed_s": self.elapsed_s(), "machine": machine(),
            "precision": self.precision,
            **({} if self.vocabulary is None else {"vocabulary": self.vocabulary.to_dict()}),
        }  # fmt: skip

    def save(self, *names: str) -> None:
        """Checkpoint `names` (e.g. "mle", "latest"), written whole even when a signal arrives meanwhile
        (train.stopping); never with a non-finite tensor (`save_checkpoint` refuses it)."""
        state = self.state()
        with signals_held():
            for name in names:
                save_checkpoint(self.run.checkpoint(name), state)
            self.saved_at = (self.stage, self.progress)

    def resume(self, state: dict[str, Any], source: str) -> None:
        """Continue from this run's `latest.pt` (`source`, checked by `check_compatible`) exactly where it
        stood; weights and optimizer states are checked against the models as they load."""
        if state["rng"]["device"] != self.device.type:
            raise ValueError(f"{self.run.path} ran on {state['rng']['device']}; resume it with --device "
                             f"{state['rng']['device']} (random states do not carry across device types)")
        self._load_models(state, source, with_discriminator=True)
        load_optimizer_state(self.agent.optimizer, state["optimizers"]["pg"], source)
        if self.agent.value is not None:
            value = state["value_baseline"] or {}  # none: a run without --baseline value wrote it
            load_weights(self.agent.value, value.get("state_dict"), f"{source}, value baseline")
            load_optimizer_state(self.agent.value.optimizer, value.get("optimizer"), source)
        self.envs.updater.load_state_dict(state["discriminator_updater"], source)
        self.agent.ema_baseline = float(state.get("ema_baseline", 0.0))  # none: no "ema" baseline ran
        self.rng.set_state(state["rng"]["train"])
        self.vector_env._torch_rng.set_state(state["rng"]["env"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self._keep_precision(state.get("precision"))
        self.metrics = state["metrics"]
        self.stage, self.progress = state["stage"], state["progress"]
        self.saved_at = (self.stage, self.progress)
        self.elapsed = state["elapsed_s"]

    def _use_precision(self, precision: Precision) -> None:
        """The products' precision (--precision): the discriminator's training and scoring; the
        rollout policy's completions and MLE only under `--precision bf16` (`generator_precision`);
        the generator's sampling, the policy gradient and the evaluation stay fp32."""
        self.precision = precision
        self.discriminator.precision = precision
        generator_side = generator_precision(self.cfg.precision, precision)
        self.rollout_policy.precision = self.mle.precision = generator_side

    def _keep_precision(self, recorded: str | None) -> None:
        """A resumed `--precision auto` run goes on in the precision it began with (`recorded`), even
        where this machine would pick the other one, so that it stays one computation."""
        if self.cfg.precision != "auto" or recorded not in ("fp32", "bf16") or recorded == self.precision:
            return
        self._use_precision(resolve_precision(recorded, self.device))

    def init_from(self, state: dict[str, Any], source: str) -> None:
        """Start from another run's pre-training (--init-from, the file `source`): its generator, data and
        pre-trained discriminator where it has one of this run's shape; this run does the rest."""
        has_d = state["stage"] in ("adversarial", "done") and (
            state["discriminator"].get("config") == self.discriminator.config.to_dict()
        )
        self._load_models(state, source, with_discriminator=has_d)
        if has_d:
            saved = state["discriminator_updater"]["optimizer"]
            load_optimizer_state(self.envs.updater.optimizer, saved, source)
        self.agent.start_rollout_policy()  # the adversarial phase starts with beta = theta
        self.metrics = [r for r in state["metrics"] if r["phase"] == "mle"]
        has_d = has_d or not self.cfg.trains_discriminator
        self.stage, self.progress = ("adversarial" if has_d else "discriminator"), 0

    def add_yardstick(self) -> None:
        """A new run's first metrics row, in a text run: the real held-out lines' own BLEU-2..5 and
        Self-BLEU-2..5 (phase "real"), once, beside the generator's at every evaluation."""
        self.metrics = [*self.evaluator.yardstick(self.test), *self.metrics]

    def _load_models(self, state: dict[str, Any], source: str, with_discriminator: bool) -> None:
        """The models (configs checked by `check_compatible` before anything was written), the MLE
        optimiser, the data and the generator-update count of a checkpoint."""
        models: list[tuple[str, torch.nn.Module]] = [("generator", self.generator),
                                                    ("rollout_policy", self.rollout_policy)]
        if with_discriminator:
            models.append(("discriminator", self.discriminator))
        for key, model in models:
            load_weights(model, state[key]["state_dict"], f"{source}, entry {key!r}")
        load_optimizer_state(self.mle.optimizer, state["optimizers"]["mle"], source)
        if isinstance(self.scorer, BLEUScorer) and not torch.equal(self.real, state["data"]["real"]):
            self.scorer.set_references(state["data"]["real"])
        self.real, self.test = state["data"]["real"], state["data"]["test"]
        self.envs.updater.real_data = self.real
        self.generator_updates = state["generator_updates"]

    def elapsed_s(self) -> float:
        return self.elapsed + time.monotonic() - self._t0

    # --- evaluation ------------------------------------------------------------------------------
    def evaluate(self, phase: str, step: int, **losses: float) -> dict[str, Any]:
        # A generator of its own per evaluation: evaluating never moves the training's random numbers,
        # and the same point of a run gets the same samples whatever --eval-every is.
        rng = seeded_rng(derive_seed(self.cfg.seed, "eval", phase, step), self.device)
        scores = self.evaluator(self.generator, self.test, rng)
        signal = self.signal(step) if phase == "adversarial" else {}
        row: dict[str, Any] = {"phase": phase, "step": step, "generator_updates": self.generator_updates,
               **scores, "temperature": self.cfg.temperature,
               "d_loss": losses.get("d_loss", float("nan")), "pg_loss": losses.get("pg_loss", float("nan")),
               "elapsed_s": round(self.elapsed_s(), 1), **signal}  # fmt: skip
        self.metrics.append(row)
        self.run.write_metrics(self.metrics, self.evaluator.fields)
        self.run.log_scalars(
            {**{f"eval/{k}": v for k, v in scores.items() if not k.endswith("_se")},
             "losses/discriminator": row["d_loss"], "losses/pg": row["pg_loss"], **signal_scalars(signal)},
            self.generator_updates,
        )
        return row

    def signal(self, round_: int) -> dict[str, float]:
        """The diagnostics of the reward the env hands out (the discriminator, or --reward's scorer);
        none for the controls, whose reward is constant or absent (train.diagnostics)."""
        scorer = self.discriminator if self.scorer is None else self.scorer
        return measure_signal(self.cfg, round_, self.generator, self.rollout_policy,
                              scorer if self.cfg.mode == "seqgan" else None, self.test, self.oracle,
                              self.eos_id, self.pad_id, dense=self.cfg.reward_mode == "dense",
                              search=self.signal_search)  # fmt: skip

    def postfix(self, row: dict[str, Any]) -> dict[str, str]:
        """The progress bar's summary of an evaluation."""
        return {k: f"{row[k]:.3f}" for k in self.evaluator.summary}

    def finish(self) -> None:
        self.run.write_metrics(self.metrics, self.evaluator.fields)
        cfg = self.cfg
        data = "" if cfg.data is None else f"{Path(cfg.data).name}, "
        reward = "" if cfg.reward == "discriminator" else f", reward {cfg.reward}"
        title = f"{data}{cfg.preset} preset, mode {cfg.mode}{reward}, seed {cfg.seed}"
        plot_learning_curve(self.metrics, self.run.path / "curve.png", title)
        if has_signal(self.metrics):
            plot_signal(self.metrics, self.run.path / "signal.png", f"the reward's signal: {title}")
        rng = seeded_rng(derive_seed(cfg.seed, "samples"), self.device)
        samples = self.generator.sample(100, rng, eos_id=self.eos_id, pad_id=self.pad_id).cpu()
        vocab = self.vocabulary
        self.run.write_samples(samples, None if vocab is None else lambda row: decode(row.tolist(), vocab))
        self.run.close()
