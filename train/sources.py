"""Where a run's data and starting models come from: the oracle (the paper's file or a seeded random
one), a text corpus split into training and held-out sequences, or another run's pre-training.

The oracle runs of the synthetic benchmark sample their data from the oracle; a text run reads a
plain-text file (one sequence per line) through `seqgan_env.text` instead, and then has a
vocabulary, an end-of-sequence id and padding.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from seqgan_env.checkpoint import (
    check_sequences,
    discriminator_from_entry,
    load_checkpoint,
    token_lstm_from_entry,
)
from seqgan_env.oracle import load_oracle, random_oracle
from seqgan_env.prefix_discriminator import AnyDiscriminator
from seqgan_env.scorers import strip_ids
from seqgan_env.text import CorpusError, Vocabulary, decode, load_corpus
from seqgan_env.token_lstm import TokenLSTM
from train.cli import config_parser
from train.config import Config, parse_config
from train.run_folder import RunFolder

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_oracle(
    vocab_size: int, seq_len: int, oracle: str | None, oracle_seed: int, search: Iterable[Path] = ()
) -> TokenLSTM:
    """The paper's oracle from its file (`oracle`: .npz or the reference's .pkl; a relative path is
    also tried under each folder of `search`), or the built-in seeded random one; checked against V."""
    if oracle is None:
        return random_oracle(vocab_size, seq_len, oracle_seed)
    path = next((p for p in (Path(oracle), *(Path(f) / oracle for f in search)) if p.is_file()), Path(oracle))
    model = load_oracle(path, seq_len)
    if model.config.vocab_size != vocab_size:
        raise ValueError(f"oracle {oracle} has vocabulary {model.config.vocab_size}, the config "
                         f"{vocab_size}: pass --vocab-size {model.config.vocab_size}")  # fmt: skip
    return model


@dataclass
class TextData:
    """A corpus's training (`real`) and held-out (`test`) sequences [N, T] and its vocabulary.

    Sequences end with `<eos>` and are padded with `pad_id` = V when shorter than T.
    """

    real: torch.Tensor
    test: torch.Tensor
    vocabulary: Vocabulary

    @property
    def eos_id(self) -> int:
        return self.vocabulary.eos_id

    @property
    def pad_id(self) -> int:
        return self.vocabulary.pad_id


def load_text_data(
    path: str | os.PathLike[str],
    level: str = "word",
    seq_len: int = 20,
    max_vocab: int | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
    expected_vocabulary: str | os.PathLike[str] | None = None,
) -> TextData:
    """Read a corpus, build its vocabulary (at most `max_vocab` ids) and split off `test_fraction`
    of the lines (seeded); errors (`CorpusError`, `ValueError`) say what is wrong with the file.
    Where the file `expected_vocabulary` exists (a resumed run's vocab.json), the corpus must still
    give that vocabulary."""
    if expected_vocabulary is not None and not isinstance(expected_vocabulary, (str, os.PathLike)):
        raise TypeError(
            f"expected_vocabulary must be a path (str or os.PathLike), got {expected_vocabulary!r}"
        )
    corpus = load_corpus(path, level, seq_len, max_vocab, test_fraction, seed)  # type: ignore[arg-type]
    if len(corpus.test) == 0:
        raise CorpusError(
            f"{path}: no held-out lines ({len(corpus.train)} line(s) in all, test fraction {test_fraction}); "
            "NLL-test and BLEU need some: use a larger corpus or test fraction"
        )
    if expected_vocabulary is not None and os.path.isfile(expected_vocabulary):
        if Vocabulary.load(expected_vocabulary) != corpus.vocab:
            raise CorpusError(f"{path} no longer gives the vocabulary {expected_vocabulary}: the corpus or "
                              "the options changed since that run started")
    return TextData(torch.from_numpy(corpus.train), torch.from_numpy(corpus.test), corpus.vocab)


def strip_sequences(
    sequences: torch.Tensor, eos_id: int | None, pad_id: int | None
) -> list[tuple[int, ...]]:
    """Each row of `sequences` [N, T] as its ids up to the first end-of-sequence or padding."""
    return [strip_ids(row, eos_id, pad_id) for row in sequences.cpu().tolist()]


def decode_lines(sequences: Iterable[torch.Tensor], vocabulary: Vocabulary | None) -> list[str]:
    """Generated sequences as lines: text through the vocabulary, else space-separated token ids."""
    if vocabulary is None:
        return [" ".join(map(str, row.tolist())) for row in sequences]
    return [decode(row.tolist(), vocabulary) for row in sequences]


@dataclass
class Pretrained:
    """What a train/adversarial.py or train/pretrain.py run folder provides to a later stage."""

    source: Path  # the checkpoint used
    settings: dict[str, Any]  # the source run's config.json
    generator: TokenLSTM
    discriminator: AnyDiscriminator | None  # None: the source has no pre-trained one
    discriminator_optimizer: dict[str, Any] | None
    real: torch.Tensor
    test: torch.Tensor
    mle_rows: list[dict[str, Any]]

    def oracle(self) -> TokenLSTM:
        """The source run's oracle (its file is also looked for under the repository and the run)."""
        s = self.settings
        return make_oracle(s["vocab_size"], s["seq_len"], s.get("oracle"), s.get("oracle_seed", 0),
                           search=(REPO_ROOT, self.source.parent))  # fmt: skip


def pretrained_checkpoint(folder: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint of a run folder's pre-training (pretrained.pt where its discriminator was
    pre-trained, else mle.pt) and the run's config; clear errors for anything else."""
    run = RunFolder(folder)
    if not run.path.is_dir():
        raise FileNotFoundError(f"--pretrained {folder}: no such folder")
    settings = run.saved_config()
    pretrained, mle = run.checkpoint("pretrained"), run.checkpoint("mle")
    if pretrained.is_file() and settings.get("disc_pretrain_repeats", 1) > 0:
        return pretrained, settings
    if mle.is_file():
        return mle, settings
    if pretrained.is_file():
        return pretrained, settings
    raise FileNotFoundError(
        f"--pretrained {folder} holds no pre-training (neither pretrained.pt nor mle.pt): let "
        "its MLE stage finish, or make one with train/pretrain.py"
    )


def load_pretrained(folder: str | Path) -> Pretrained:
    """A run folder's pre-trained generator, discriminator (where it has one), data and MLE curve;
    a one-line ValueError for a checkpoint that lacks them."""
    path, settings = pretrained_checkpoint(folder)
    state = load_checkpoint(path)
    if "generator" not in state:
        raise ValueError(f"{path} is not a pre-training checkpoint (it holds no generator)")
    generator = token_lstm_from_entry(state["generator"], f"{path}, entry 'generator'").eval()
    data, metrics = state.get("data"), state.get("metrics", [])
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a pre-training checkpoint (it holds no data)")
    V, T, padded = generator.config.vocab_size, generator.config.seq_len, "vocabulary" in state
    real, test = (check_sequences(data.get(k), V, T, f"{path}: data {k}", padded) for k in ("real", "test"))
    if not isinstance(metrics, list) or not all(isinstance(r, dict) and "phase" in r for r in metrics):
        raise ValueError(f"{path}: its metrics are not rows of a run's metrics")
    has_d = state.get("stage") in ("adversarial", "done") and settings.get("disc_pretrain_repeats", 1) > 0
    updater = state.get("discriminator_updater") if has_d else None
    if has_d and not (isinstance(updater, dict) and isinstance(updater.get("optimizer"), dict)):
        raise ValueError(f"{path} is not a pre-training checkpoint (no optimizer state of its discriminator)")
    return Pretrained(
        source=path,
        settings=settings,
        generator=generator,
        discriminator=discriminator_from_entry(state.get("discriminator", {}), f"{path}, entry "
                                               "'discriminator'") if has_d else None,
        discriminator_optimizer=updater["optimizer"] if updater is not None else None,
        real=real,
        test=test,
        mle_rows=[r for r in metrics if r["phase"] == "mle"],
    )  # fmt: skip


class PretrainingOptions(Protocol):
    """What a script that pre-trains in place (train/sb3.py, train/rllib.py) passes on to it."""

    @property
    def pretrain_preset(self) -> str: ...
    @property
    def pretrain_args(self) -> str: ...
    @property
    def oracle(self) -> str | None: ...
    @property
    def seed(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @property
    def progress(self) -> bool: ...


def pretraining_config(options: PretrainingOptions, run: RunFolder) -> Config:
    """The in-place pre-training's options: --pretrain-preset, --pretrain-args, into RUN/pretrain.
    --pretrain-args may not set what the script sets itself: where the pre-training goes and what it
    starts from, and (other than to the same value) what it takes from the script's own options."""
    instead = {
        "preset": "use --pretrain-preset",
        "out": "the pre-training goes into RUN/pretrain (RUN: --out and --name)",
        "name": "the pre-training goes into RUN/pretrain (RUN: --out and --name)",
        "resume": "the pre-training starts afresh in RUN/pretrain; to start from a finished one, use "
        "--pretrained (train/pretrain.py --resume finishes one)",
        "init_from": "to start from another run's pre-training, use --pretrained",
        **{key: f"use this script's --{key}" for key in ("seed", "device", "threads", "oracle")},
        "progress": "use this script's --progress or --no-progress",
    }  # fmt: skip
    own = {"seed": options.seed, "device": options.device, "threads": options.threads,
           "oracle": options.oracle, "progress": options.progress}  # fmt: skip
    args = shlex.split(options.pretrain_args)
    argv = ["--preset", options.pretrain_preset, "--seed", str(options.seed), "--device", options.device,
            "--threads", str(options.threads), "--out", str(run.path), "--name", "pretrain",
            *(["--oracle", options.oracle] if options.oracle is not None else []),
            *([] if options.progress else ["--no-progress"]), *args]  # fmt: skip
    try:
        given = vars(config_parser(Config, None).parse_args(args))  # every flag, abbreviations resolved
        for key, value in given.items():
            if key in instead and (key not in own or value != own[key]):
                flag = "--no-progress" if key == "progress" and not value else f"--{key.replace('_', '-')}"
                raise ValueError(f"{flag} cannot be given here: {instead[key]}")
        return parse_config(argv, pretraining=True)
    except ValueError as err:
        if not options.pretrain_args:
            raise
        raise ValueError(f"--pretrain-args {options.pretrain_args!r}: {err}") from None


def learner_source(
    pretrained: str | None, options: PretrainingOptions, run: RunFolder
) -> tuple[int, int, Config | None]:
    """V, T and the in-place pre-training (None: from `pretrained`) of an SB3 or RLlib run: the run
    folder `pretrained`, checked to hold a readable pre-training, else `options`' pre-training into
    RUN/pretrain, its oracle file checked now. Either is a run of the synthetic benchmark (these learners are
    evaluated against its oracle; a text run has none). Writes nothing."""
    if pretrained is not None:
        _, settings = pretrained_checkpoint(pretrained)
        if settings.get("data") is not None:
            raise ValueError(f"--pretrained {pretrained} is a text run (--data {settings['data']}): this "
                             "script trains on the synthetic benchmark (an oracle's data) only")  # fmt: skip
        load_pretrained(pretrained)  # its checkpoint readable (and finite) before anything is written
        return settings["vocab_size"], settings["seq_len"], None
    pre_cfg = pretraining_config(options, run)
    if pre_cfg.data is not None:
        raise ValueError(f"--pretrain-args sets --data {pre_cfg.data}: this script trains on the synthetic "
                         "benchmark (an oracle's data) only")  # fmt: skip
    make_oracle(pre_cfg.vocab_size, pre_cfg.seq_len, pre_cfg.oracle, pre_cfg.oracle_seed)  # fails now if bad
    return pre_cfg.vocab_size, pre_cfg.seq_len, pre_cfg
