"""The experiment's stages, in order: MLE pre-training, discriminator pre-training, adversarial rounds.

`run_rounds` is the adversarial loop for any `agents.learner.Learner` (REINFORCE, the controls, an
SB3 algorithm): each round the learner collects and updates (its rollout-policy sync included), then
the discriminator retrains. `open_experiment` checks a config against what it will read (corpus,
oracle, a run to resume or start from) and makes or locks the run folder; `run_experiment` takes it
through the stages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from tqdm import tqdm

from agents.learner import Learner
from seqgan_env.checkpoint import load_checkpoint
from train.config import Config
from train.experiment import Experiment, check_compatible, init_from_checkpoint
from train.rng import derive_seed
from train.run_folder import RunFolder
from train.sources import load_text_data, make_oracle

STAGES = ("mle", "discriminator", "adversarial", "done")
OnRound = Callable[[int, dict[str, float]], "dict[str, str] | None"]  # (round, losses) -> progress summary


def run_rounds(
    learner: Learner,
    envs: gym.vector.VectorEnv,
    rounds: int,
    done: int,
    train_discriminator: Callable[[], float] | None,
    on_round: OnRound,
    desc: str,
    progress: bool = True,
) -> None:
    """Rounds `done + 1 .. rounds`: the learner's collect and update (which syncs the env's rollout
    policy), then `train_discriminator` (None: a fixed discriminator); `on_round(round, losses)` logs,
    evaluates and checkpoints, and returns a summary for the progress bar when it evaluated."""
    d_loss = float("nan")
    with tqdm(total=rounds, initial=done, desc=desc, unit="round", disable=not progress) as bar:
        for round_ in range(done + 1, rounds + 1):
            pg_loss = learner.update(learner.collect(envs))
            if train_discriminator is not None:
                d_loss = train_discriminator()
            summary = on_round(round_, {"pg_loss": pg_loss, "d_loss": d_loss})
            if summary:
                bar.set_postfix(summary)
            bar.update(1)


def run_mle(exp: Experiment) -> None:
    cfg = exp.cfg
    steps_per_epoch = -(-len(exp.real) // cfg.batch_size)
    with tqdm(total=cfg.mle_epochs, initial=exp.progress, desc="MLE pre-training", unit="epoch",
              disable=not cfg.progress) as bar:  # fmt: skip
        while exp.progress < cfg.mle_epochs:
            loss = exp.mle.epoch(exp.real, exp.rng)
            exp.agent.start_rollout_policy()  # every checkpoint records the rollout policy beta = theta
            exp.progress += 1
            exp.generator_updates += steps_per_epoch
            exp.run.log_scalars({"losses/mle": loss}, exp.generator_updates)
            if exp.progress % cfg.mle_eval_every == 0 or exp.progress == cfg.mle_epochs:
                row = exp.evaluate("mle", exp.progress)
                bar.set_postfix(exp.postfix(row))
                exp.save("latest")
            bar.update(1)
    exp.stage, exp.progress = "discriminator", 0
    exp.save("mle", "latest")


def run_discriminator_pretraining(exp: Experiment) -> None:
    cfg = exp.cfg
    if not cfg.trains_discriminator:  # the controls and PG-BLEU never consult a discriminator
        exp.stage, exp.progress = "adversarial", 0
        return
    with tqdm(total=cfg.disc_pretrain_repeats, initial=exp.progress, desc="discriminator pre-training",
              unit="set", disable=not cfg.progress) as bar:  # fmt: skip
        while exp.progress < cfg.disc_pretrain_repeats:
            loss = exp.envs.updater.train(repeats=1)
            exp.progress += 1
            exp.run.log_scalars({"losses/discriminator_pretrain": loss}, exp.progress)
            bar.set_postfix(d_loss=f"{loss:.4f}")
            bar.update(1)
            if exp.progress % cfg.eval_every == 0:
                exp.save("latest")
    exp.stage, exp.progress = "adversarial", 0
    exp.save("pretrained", "latest")


def run_adversarial(exp: Experiment) -> None:
    cfg = exp.cfg
    learner = exp.learner()
    if exp.progress == 0:
        learner.start_rollout_policy()
        exp.evaluate("adversarial", 0)  # the starting point: the pre-trained generator

    def on_round(round_: int, losses: dict[str, float]) -> dict[str, str] | None:
        exp.progress = round_
        exp.generator_updates += 1
        exp.run.log_scalars({"losses/pg": losses["pg_loss"], "losses/discriminator": losses["d_loss"]},
                            exp.generator_updates)  # fmt: skip
        if round_ % cfg.eval_every == 0 or round_ == cfg.rounds:
            row = exp.evaluate("adversarial", round_, **losses)
            exp.save("latest")
            return exp.postfix(row)
        return None

    trains = cfg.trains_discriminator and cfg.disc_repeats > 0
    run_rounds(learner, exp.envs, cfg.rounds, exp.progress, exp.envs.train_discriminator if trains else None,
               on_round, f"adversarial ({cfg.mode})", cfg.progress)  # fmt: skip
    exp.stage = "done"
    exp.save("final", "latest")


def open_experiment(cfg: Config) -> Experiment:
    """Check `cfg` against what the run will read, then make (or lock, to resume) its run folder and
    build the experiment at the point it starts from. Raises ValueError, FileNotFoundError,
    FileExistsError, CorpusError or RuntimeError (a folder in use) before anything is written."""
    oracle = (
        make_oracle(cfg.vocab_size, cfg.seq_len, cfg.oracle, cfg.oracle_seed) if cfg.data is None else None
    )
    text = None if cfg.data is None else load_text_data(
        cfg.data, cfg.level, cfg.seq_len, cfg.max_vocab, cfg.test_fraction, cfg.seed,
        expected_vocabulary=None if cfg.resume is None else Path(cfg.resume) / "vocab.json",
    )  # fmt: skip
    if text is not None:  # V comes from the corpus (config.json records it)
        cfg = dataclasses.replace(cfg, vocab_size=text.vocabulary.size)
        cfg.validate()  # the sizes that depend on V (memory)
    vocabulary = None if text is None else text.vocabulary
    name = cfg.name or f"{cfg.preset}_{cfg.mode}_s{cfg.seed}_{datetime.now():%Y%m%d-%H%M%S}"
    run = RunFolder(cfg.resume) if cfg.resume else RunFolder(Path(cfg.out) / name)
    latest = run.checkpoint("latest")
    start: dict[str, Any] | None = None
    if cfg.resume:
        run.lock()
        run.remove_temporaries()  # what a kill during a write left
        if latest.is_file():
            start = load_checkpoint(latest)
            check_compatible(cfg, start, latest, vocabulary)
    if start is None and cfg.init_from:  # a new run, or one killed before its first checkpoint
        start = init_from_checkpoint(cfg, vocabulary)
    if not cfg.resume:
        run.create(cfg.run_settings())
    torch.manual_seed(derive_seed(cfg.seed, "torch"))  # dropout's generator (restored on resume)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if text is not None and not (run.path / "vocab.json").is_file():
        text.vocabulary.save(run.path / "vocab.json")
    exp = Experiment(cfg, run, oracle, text)
    if cfg.resume and latest.is_file():
        assert start is not None
        exp.resume(start)
        print(f"resuming {run.path} at stage {exp.stage}, {exp.progress} done")
        run.tensorboard(purge_step=exp.generator_updates + 1)
    else:
        if start is not None:
            exp.init_from(start)
        exp.add_yardstick()
        print(f"{'restarting' if cfg.resume else 'run folder:'} {run.path}", flush=True)
    if exp.precision != "fp32":
        print(f"precision: {exp.precision} (--precision {cfg.precision})", flush=True)
    return exp


def run_experiment(exp: Experiment, until: str = "done") -> None:
    """Take `exp` through its stages up to `until` ("adversarial": pre-training only), then write its
    final outputs (metrics, curve, samples) and release the run folder."""
    stages = {"mle": run_mle, "discriminator": run_discriminator_pretraining, "adversarial": run_adversarial}
    for stage in STAGES[: STAGES.index(until)]:
        if exp.stage == stage:
            stages[stage](exp)
    exp.finish()
