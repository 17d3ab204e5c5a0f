"""The experiment's stages, in order: MLE pre-training, discriminator pre-training, adversarial rounds.

`run_rounds` is the adversarial loop for any `agents.learner.Learner` (REINFORCE, the controls, an
SB3 algorithm): each round the learner collects and updates (its rollout-policy sync included), then
the discriminator retrains. `open_experiment` checks a config against what it will read (corpus,
oracle, a run to resume or start from) and makes or locks the run folder; `run_experiment` takes it
through the stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from tqdm import tqdm

from agents.learner import Learner
from seqgan_env.checkpoint import load_checkpoint
from seqgan_env.discriminator import Discriminator
from seqgan_env.finite import NonFiniteError, require_finite
from seqgan_env.vector_env import SeqGANVectorEnv
from seqgan_env.wrappers import DiscriminatorUpdater
from train.allocator import keep_freed_memory
from train.config import Config
from train.experiment import Experiment
from train.reproducibility import compile_note, machine_note, thread_note
from train.rng import derive_seed
from train.run_folder import RunFolder
from train.run_state import STAGES, check_compatible, init_from_checkpoint
from train.sources import load_text_data, make_oracle
from train.stopping import cause, command

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
    evaluates and checkpoints, and returns a summary for the progress bar when it evaluated.

    Each round's losses and models are checked before `on_round` sees them: NaN or infinity raises
    `NonFiniteError` naming the round. A NaN policy loss is one the algorithm did not report (RLlib's
    asynchronous rounds); a NaN from a real step reaches the weights, which are checked."""
    d_loss = float("nan")
    env = envs.unwrapped
    if not isinstance(env, SeqGANVectorEnv):
        raise TypeError(f"run_rounds runs a SeqGANVectorEnv (or a vector wrapper of one), got "
                        f"{type(env).__name__}")  # fmt: skip
    with tqdm(total=rounds, initial=done, desc=desc, unit="round", disable=not progress) as bar:
        for round_ in range(done + 1, rounds + 1):
            pg_loss = learner.update(learner.collect(envs))
            losses = {} if math.isnan(pg_loss) else {"policy loss": pg_loss}
            if train_discriminator is not None:
                d_loss = losses["discriminator loss"] = train_discriminator()
            require_finite(f"adversarial round {round_}", losses, policy=learner.weights,
                           rollout_policy=env.rollout_policy, discriminator=env.discriminator)  # fmt: skip
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
            require_finite(f"MLE pre-training, epoch {exp.progress + 1}", {"MLE loss": loss},
                           generator=exp.generator)  # fmt: skip
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
            loss = pretrain_discriminator_set(exp.envs.updater, exp.progress + 1)
            exp.progress += 1
            exp.run.log_scalars({"losses/discriminator_pretrain": loss}, exp.progress)
            bar.set_postfix(d_loss=f"{loss:.4f}")
            bar.update(1)
            if exp.progress % cfg.eval_every == 0:
                exp.save("latest")
    exp.stage, exp.progress = "adversarial", 0
    exp.save("pretrained", "latest")


def pretrain_discriminator_set(updater: DiscriminatorUpdater, set_: int) -> float:
    """Set `set_` of discriminator pre-training (fresh negatives, the schedule's epochs): its loss,
    checked finite with the discriminator's weights (`NonFiniteError`)."""
    loss = updater.train(repeats=1)
    require_finite(f"discriminator pre-training, set {set_}", {"discriminator loss": loss},
                   discriminator=updater.discriminator)  # fmt: skip
    return loss


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
    dense = cfg.mode == "seqgan" and cfg.reward_mode == "dense"
    label = f"adversarial ({cfg.mode}{', dense rewards' if dense else ''})"
    run_rounds(learner, exp.envs, cfg.rounds, exp.progress, exp.envs.train_discriminator if trains else None,
               on_round, label, cfg.progress)  # fmt: skip
    exp.stage = "done"
    exp.save("final", "latest")


def open_experiment(cfg: Config) -> Experiment:
    """Check `cfg` against what the run will read, then make (or lock, to resume) its run folder and
    build the experiment at the point it starts from. Raises ValueError, OSError (a missing file, an
    existing run folder, one the system refuses to make), CorpusError or RuntimeError (a folder in use)
    before anything is written, and leaves nothing behind."""
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
    source = latest  # the checkpoint `start` was read from
    if cfg.resume:
        if not os.access(run.path, os.W_OK):
            raise ValueError(f"run folder {run.path} is not writable: a resumed run writes its checkpoints "
                             "there")  # fmt: skip
        run.lock()
    try:
        if cfg.resume:
            run.remove_temporaries()  # what a kill during a write left
            if latest.is_file():
                start = load_checkpoint(latest)
                check_compatible(cfg, start, latest, vocabulary)
        if start is None and cfg.init_from:  # a new run, or one killed before its first checkpoint
            source, start = init_from_checkpoint(cfg, vocabulary)
        # The thread count changes the floats' rounding: config.json records the one the run uses.
        cfg = dataclasses.replace(cfg, threads=cfg.threads or torch.get_num_threads())
        torch.set_num_threads(cfg.threads)
        keep_freed_memory()
    except BaseException:
        run.close()
        raise
    if not cfg.resume:
        run.create(cfg.recorded_settings())
    try:
        resuming = cfg.resume is not None and latest.is_file()
        return _start(cfg, run, oracle, text, start, str(source), resuming)
    except BaseException:
        if cfg.resume:
            run.close()
        else:
            run.discard()
        raise


def _start(
    cfg: Config, run: RunFolder, oracle: Any, text: Any, start: dict[str, Any] | None, source: str,
    resuming: bool,
) -> Experiment:
    """The experiment in its (locked) run folder: resumed from `start` (its latest.pt) when
    `resuming`, else started, from `start` (--init-from's pre-training) where given; `source` is the
    file `start` was read from."""
    torch.manual_seed(derive_seed(cfg.seed, "torch"))  # dropout's generator (restored on resume)
    if text is not None and not (run.path / "vocab.json").is_file():
        text.vocabulary.save(run.path / "vocab.json")
    exp = Experiment(cfg, run, oracle, text)
    if resuming:
        assert start is not None
        exp.resume(start, source)
        recorded = run.saved_config()
        notes = thread_note(recorded.get("threads"), cfg.threads)
        notes += compile_note(recorded.get("compile"), cfg.compile)
        print(f"resuming {run.path} at stage {exp.stage}, {exp.progress} done{notes}{machine_note(start)}",
              flush=True)  # fmt: skip
        run.tensorboard(purge_step=exp.generator_updates + 1)
    else:
        if start is not None:
            exp.init_from(start, source)
        exp.add_yardstick()
        print(f"{'restarting' if cfg.resume else 'run folder:'} {run.path}", flush=True)
    compiled = isinstance(exp.discriminator, Discriminator) and exp.discriminator.compiled  # the CNN's
    if compiled and cfg.trains_discriminator:
        print("--compile: the discriminator's first training step compiles it (up to a minute)", flush=True)
    if exp.precision != "fp32":
        print(f"precision: {exp.precision} for the discriminator, {exp.mle.precision} for the generator's "
              f"completions and MLE (--precision {cfg.precision})", flush=True)
    return exp


def run_experiment(exp: Experiment, until: str = "done") -> None:
    """Take `exp` through its stages up to `until` ("adversarial": pre-training only), then write its
    final outputs (metrics, curve, samples) and release the run folder (also when it stops early)."""
    stages = {"mle": run_mle, "discriminator": run_discriminator_pretraining, "adversarial": run_adversarial}
    try:
        for stage in STAGES[: STAGES.index(until)]:
            if exp.stage == stage:
                stages[stage](exp)
        exp.finish()
    except BaseException:
        with contextlib.suppress(OSError):  # e.g. a full disk: the error under way is the one to report
            exp.run.close()
        raise


def position(exp: Experiment, at: tuple[str, int] | None = None) -> str:
    """How far the run is (or was `at` a (stage, progress)), e.g. "4 of 6 adversarial rounds"."""
    stage, progress = (exp.stage, exp.progress) if at is None else at
    cfg = exp.cfg
    counts = {"mle": (cfg.mle_epochs, "MLE epochs"),
              "discriminator": (cfg.disc_pretrain_repeats, "discriminator pre-training sets"),
              "adversarial": (cfg.rounds, "adversarial rounds")}  # fmt: skip
    if stage not in counts:
        return f"all {cfg.rounds} adversarial rounds"
    total, what = counts[stage]
    return f"{progress} of {total} {what}"


def stop_message(exp: Experiment, err: BaseException, script: str) -> str:
    """The one line of a run of `script` (e.g. "adversarial.py") that stopped early
    (train.stopping): why, how far it got, and the command that continues it."""
    saved = None if exp.saved_at is None else position(exp, exp.saved_at)
    if isinstance(err, NonFiniteError):
        kept = "it has no checkpoint" if saved is None else f"its last checkpoint is at {saved}"
        return f"{cause(err)}; nothing non-finite was saved ({kept})"
    where, resume = f"{cause(err)} after {position(exp)}", command(script, "--resume", str(exp.run.path))
    if saved is None:
        return f"{where}; no checkpoint yet, it starts again with: {resume}"
    return f"{where}; it resumes from its checkpoint at {saved} with: {resume}"
