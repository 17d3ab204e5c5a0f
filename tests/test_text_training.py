"""Training on real text: variable-length episodes, PG-BLEU, train/adversarial.py --data, train/sample.py.

Corpora are made in tmp_path; every run uses the tiny preset, and most run in this process.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import random
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from conftest import HANG_GUARD

from agents.reinforce import ReinforceAgent
from seqgan_env.bleu import BLEUReference, bleu, self_bleu
from seqgan_env.checkpoint import load_checkpoint
from seqgan_env.env import SeqGANEnv
from seqgan_env.scorers import BLEUScorer, strip_ids
from seqgan_env.text import Vocabulary
from seqgan_env.token_lstm import TokenLSTM, TokenLSTMConfig
from seqgan_env.vector_env import SeqGANVectorEnv
from train.config import parse_config
from train.diagnostics import SIGNAL_FIELDS
from train.evaluation import TEXT_METRIC_FIELDS, real_text_scores
from train.experiment import Experiment
from train.plots import signal_panels
from train.run_folder import RunFolder
from train.sources import load_text_data, strip_sequences
from train.stages import run_adversarial

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "train" / "adversarial.py"
SAMPLE = ROOT / "train" / "sample.py"
T = 8  # the tiny preset's sequence length
FAST = ["--preset", "tiny", "--threads", "1", "--bleu-samples", "32", "--self-bleu-samples", "16",
        "--n-negatives", "64"]  # fmt: skip
SUBJECTS, VERBS, OBJECTS = ["the cat", "a dog", "my friend", "the bird"], ["sees", "eats", "likes"], [
    "the fish", "a red ball", "some bread", "the big old house"]  # fmt: skip


def write_corpus(path: Path, lines: int = 160, seed: int = 0) -> Path:
    """Short sentences of 3 to 9 words (some longer than T, so some have no <eos>)."""
    rng = random.Random(seed)
    text = []
    for _ in range(lines):
        words = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}".split()
        text.append(" ".join(words + ["today"] * rng.randint(0, 2)))
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus.txt")


def load_script(path: Path = TRAIN) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{path.stem}_script", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_main(capsys: pytest.CaptureFixture[str], *args: str, script: Path = TRAIN) -> tuple[int, str, str]:
    code = load_script(script).main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def read_metrics(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    with (folder / "metrics.csv").open() as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def assert_padded_after_eos(rows: list[list[int]], eos: int, pad: int) -> None:
    for row in rows:
        k = row.index(eos) if eos in row else len(row) - 1
        assert row[k + 1 :] == [pad] * (len(row) - k - 1) and pad not in row[: k + 1], row


def text_experiment(tmp_path: Path, corpus: Path, *args: str) -> tuple[None, Experiment]:
    """train/adversarial.py's Experiment for a tiny text run, in this process."""
    cfg = parse_config([*FAST, "--data", str(corpus), *args])
    text = load_text_data(cfg.data, cfg.level, cfg.seq_len, cfg.max_vocab, cfg.test_fraction, cfg.seed)
    cfg = dataclasses.replace(cfg, vocab_size=text.vocabulary.size)
    run = RunFolder(tmp_path / "run")
    run.create(cfg.run_settings())
    return None, Experiment(cfg, run, None, text)


# --- the reward plug-in: PG-BLEU ------------------------------------------------------------------------
def test_strip_ids_stops_at_eos_or_pad():
    assert strip_ids([5, 6, 1, 9, 9], eos_id=1, pad_id=9) == (5, 6)
    assert strip_ids(torch.tensor([5, 6, 9, 9]), eos_id=1, pad_id=9) == (5, 6)
    assert strip_ids([5, 6, 7], eos_id=1, pad_id=9) == (5, 6, 7)
    assert strip_ids([1, 5], eos_id=1, pad_id=None) == ()


@pytest.mark.parametrize("n", [2, 4])
def test_bleu_scorer_equals_sentence_bleu_of_the_stripped_sequences(n):
    V, eos, pad = 12, 1, 12
    g = torch.Generator().manual_seed(0)
    train = torch.randint(3, V, (40, T), generator=g)
    train[::3, 5:] = pad
    train[::3, 5] = eos
    hyps = torch.randint(3, V, (30, T), generator=g)
    hyps[::2, 4:] = pad
    hyps[::2, 4] = eos
    hyps[1] = train[0]  # a training sentence scores 1
    scorer = BLEUScorer(train, n=n, eos_id=eos, pad_id=pad)
    reference = BLEUReference([strip_ids(r, eos, pad) for r in train.tolist()], max_n=n)
    expected = [reference.sentence_bleu(strip_ids(h, eos, pad), n) for h in hyps.tolist()]
    for _ in range(2):  # the second time from the cache
        scores = scorer.score(hyps)
        assert scores.dtype == torch.float32 and scores.shape == (30,)
        torch.testing.assert_close(scores, torch.tensor(expected, dtype=torch.float32))
    assert scores[1] == pytest.approx(1.0) and ((scores >= 0) & (scores <= 1)).all()
    scorer.set_references(hyps)  # new references, no stale cache
    assert scorer.score(hyps[:1]).item() == pytest.approx(1.0)


class RecordingBLEUScorer(BLEUScorer):
    """A BLEU scorer that remembers every batch it scored and what it returned."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def score(self, sequences: torch.Tensor) -> torch.Tensor:
        values = super().score(sequences)
        self.calls.append((sequences.clone(), values.clone()))
        return values


def small_text_env(scorer: BLEUScorer, vocab: Vocabulary, **kwargs) -> SeqGANEnv:
    return SeqGANEnv(vocab_size=vocab.size, seq_len=T, n_rollouts=6, eos_id=vocab.eos_id, scorer=scorer,
                     embed_dim=4, hidden_dim=4, discriminator_filters=[(1, 2), (2, 2)], oracle_seed=None,
                     vocabulary=vocab.tokens, **kwargs)  # fmt: skip


def test_bleu_scorer_plugs_into_the_env(corpus: Path):
    data = load_text_data(corpus, seq_len=T)
    vocab = data.vocabulary
    scorer = RecordingBLEUScorer(data.real, n=2, eos_id=vocab.eos_id, pad_id=vocab.pad_id)
    env = small_text_env(scorer, vocab, render_mode="ansi")
    env.reset(seed=0)
    words = ["the", "cat", "eats", "a", "red", "ball"]
    rewards = []
    for i, word in enumerate([*words, "<eos>"]):
        obs, reward, terminated, _, info = env.step(vocab.id_of(word) if word != "<eos>" else vocab.eos_id)
        rewards.append(reward)
        sequences, values = scorer.calls[-1]
        if not terminated:  # Q_t: the mean BLEU of the N completions of the prefix, which stop at eos
            assert len(sequences) == 6 and (sequences[:, : i + 1] == torch.as_tensor(obs[: i + 1])).all()
            assert_padded_after_eos(sequences.tolist(), vocab.eos_id, vocab.pad_id)
            assert reward == pytest.approx(values.mean().item(), abs=1e-6)
            assert info["q"] == pytest.approx(reward)
    assert terminated and len(rewards) == 7  # the episode ended at <eos>, before T tokens
    final = info["sequence"]
    assert strip_ids(final, vocab.eos_id, vocab.pad_id) == tuple(vocab.id_of(w) for w in words)
    expected = BLEUReference(strip_sequences(data.real, vocab.eos_id, vocab.pad_id), max_n=2).sentence_bleu(
        [vocab.id_of(w) for w in words], 2)  # fmt: skip
    assert rewards[-1] == pytest.approx(expected, abs=1e-6) and 0 < expected <= 1
    assert env.render() == "the cat eats a red ball <eos>"  # the ansi render speaks the vocabulary


# --- variable length through the agent -------------------------------------------------------------------
def test_collect_pads_after_eos_and_update_ignores_those_positions(corpus: Path):
    data = load_text_data(corpus, seq_len=T)
    vocab = data.vocabulary
    eos, pad = vocab.eos_id, vocab.pad_id
    scorer = BLEUScorer(data.real, n=2, eos_id=eos, pad_id=pad)
    envs = SeqGANVectorEnv(num_envs=24, vocab_size=vocab.size, seq_len=T, n_rollouts=2, eos_id=eos,
                           scorer=scorer, embed_dim=4, hidden_dim=4, discriminator_filters=[(1, 2)],
                           oracle_seed=None)  # fmt: skip
    generator = TokenLSTM(TokenLSTMConfig(vocab.size, T, 4, 4), rng=torch.Generator().manual_seed(0))
    with torch.no_grad():
        generator.output.bias[eos] = 2.5  # episodes of many lengths
    agent = ReinforceAgent(generator, envs.rollout_policy, rng=torch.Generator().manual_seed(0))
    episodes = agent.collect(envs)
    rows = episodes.sequences.tolist()
    assert_padded_after_eos(rows, eos, pad)
    lengths = [row.index(eos) + 1 if eos in row else T for row in rows]
    assert len(set(lengths)) > 2
    for row, length, rewards in zip(rows, lengths, episodes.rewards.tolist(), strict=True):
        assert all(r == 0 for r in rewards[length:])
        assert rewards[length - 1] == pytest.approx(scorer.sentence_bleu(row), abs=1e-6)  # r_T = BLEU(y)
    # The policy-gradient loss is that of each sequence on its own, up to and including its <eos>.
    expected = 0.0
    with torch.no_grad():
        for row, length, rewards in zip(rows, lengths, episodes.rewards, strict=True):
            log_probs = generator.log_probs(torch.tensor([row[:length]]))[0]
            expected -= (log_probs * rewards[:length]).sum().item()
    assert agent.update(episodes, pad_id=pad) == pytest.approx(expected, rel=1e-5)


def test_text_experiment_wires_eos_and_padding_everywhere(tmp_path: Path, corpus: Path):
    _module, exp = text_experiment(tmp_path, corpus, "--rounds", "2")
    vocab = exp.vocabulary
    eos, pad = vocab.eos_id, vocab.pad_id
    assert (eos, pad) == (1, vocab.size) and exp.cfg.vocab_size == vocab.size
    assert exp.mle.pad_id == pad  # MLE ignores what follows <eos>
    env = exp.envs.unwrapped
    assert env.eos_id == eos and env.pad_id == pad and env.vocabulary == list(vocab.tokens)
    assert (exp.real == pad).any() and (exp.real == eos).any()
    negatives = exp.envs.updater.sampler(200)  # generated negatives of the discriminator
    assert_padded_after_eos(negatives.tolist(), eos, pad)
    assert (negatives == pad).any()
    assert exp.discriminator.pad_id == pad and (exp.discriminator.embedding.weight[pad] == 0).all()

    pad_ids = []
    update = exp.agent.update
    exp.agent.update = lambda episodes: pad_ids.append(episodes.pad_id) or update(episodes)
    exp.stage = "adversarial"
    run_adversarial(exp)
    assert pad_ids == [pad, pad]  # the policy gradient ignores what follows <eos>
    assert (exp.discriminator.embedding.weight[pad] == 0).all()  # padding still embeds to zeros
    exp.run.close()
    fields, rows = read_metrics(exp.run.path)
    assert fields == list(TEXT_METRIC_FIELDS) and [r["phase"] for r in rows] == ["adversarial"] * 2


def test_bleu_reward_rewards_bleu_of_the_training_data(tmp_path: Path, corpus: Path):
    _, exp = text_experiment(tmp_path, corpus, "--reward", "bleu", "--bleu-n", "3")
    assert isinstance(exp.scorer, BLEUScorer) and exp.scorer.n == 3
    assert exp.scorer.reference.num_references == len(exp.real)
    episodes = exp.agent.collect(exp.envs)
    for row, rewards in zip(episodes.sequences.tolist(), episodes.rewards.tolist(), strict=True):
        length = row.index(1) + 1 if 1 in row else T
        assert rewards[length - 1] == pytest.approx(exp.scorer.sentence_bleu(row), abs=1e-6)


def test_bleu_reward_run_never_trains_the_discriminator(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_main(capsys, *FAST, "--data", str(corpus), "--reward", "bleu", "--rounds", "2",
                              "--out", str(tmp_path), "--name", "pgbleu")  # fmt: skip
    assert code == 0, err
    folder = tmp_path / "pgbleu"
    assert not (folder / "pretrained.pt").exists()  # no discriminator pre-training
    mle, final = load_checkpoint(folder / "mle.pt"), load_checkpoint(folder / "final.pt")
    for key, value in final["discriminator"]["state_dict"].items():
        assert torch.equal(value, mle["discriminator"]["state_dict"][key]), key
    generator_bias = [c["generator"]["state_dict"]["output.bias"] for c in (mle, final)]
    assert not torch.equal(*generator_bias)  # the generator did learn
    _, rows = read_metrics(folder)
    adversarial = [r for r in rows if r["phase"] == "adversarial"]
    assert [int(r["step"]) for r in adversarial] == [0, 2]
    assert all(r["d_loss"] == "nan" for r in rows if r["phase"] != "real")
    assert float(adversarial[-1]["pg_loss"]) > 0
    assert json.loads((folder / "config.json").read_text())["reward"] == "bleu"


# --- train/adversarial.py --data and train/sample.py, end to end -----------------------------------------
def test_text_run_end_to_end_and_sampling(tmp_path: Path, corpus: Path):
    command = [sys.executable, str(TRAIN), *FAST, "--data", str(corpus), "--out", str(tmp_path),
               "--name", "run"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "BLEU-4" in result.stdout and "NLL-oracle" not in result.stdout
    assert re.search(r"the real held-out lines: BLEU-4 [0-9.]+, Self-BLEU-4 [0-9.]+", result.stdout)
    folder = tmp_path / "run"
    vocab = Vocabulary.load(folder / "vocab.json")
    words = set(corpus.read_text().split())
    assert set(vocab.tokens) == words | {"<bos>", "<eos>", "<unk>"}
    config = json.loads((folder / "config.json").read_text())
    assert config["data"] == str(corpus) and config["vocab_size"] == vocab.size

    fields, rows = read_metrics(folder)
    assert fields == list(TEXT_METRIC_FIELDS) and "nll_oracle" not in fields
    steps = [(r["phase"], int(r["step"])) for r in rows]
    assert steps == [("real", 0), ("mle", 2), ("mle", 3), ("adversarial", 0), ("adversarial", 2),
                     ("adversarial", 4)]  # fmt: skip
    real, rows = rows[0], rows[1:]  # the held-out lines' own BLEU and Self-BLEU: the yardstick, once
    assert real["nll_test"] == "" and all(0 < float(real[f"{k}{n}"]) <= 1
                                          for k in ("bleu", "self_bleu") for n in (2, 3, 4, 5))  # fmt: skip
    for r in rows:
        assert float(r["nll_test"]) > 0 and float(r["nll_test_se"]) > 0
        for n in (2, 3, 4, 5):
            assert 0 <= float(r[f"bleu{n}"]) <= 1 and 0 <= float(r[f"self_bleu{n}"]) <= 1
        assert float(r["bleu2"]) > float(r["bleu5"])
        # diagnostics of a text run: the discriminator's accuracy and AUC; no oracle, and no fixed-length
        # Monte Carlo search to split (train/diagnostics.py)
        measured = {"d_accuracy", "d_auc"} if r["phase"] == "adversarial" else set()
        assert {k for k in SIGNAL_FIELDS if r[k] != ""} == measured
        assert all(0 <= float(r[k]) <= 1 for k in measured)
    assert (folder / "signal.png").read_bytes().startswith(b"\x89PNG")
    for name in ("mle", "pretrained", "final", "latest"):
        assert Vocabulary.from_dict(load_checkpoint(folder / f"{name}.pt")["vocabulary"]) == vocab
    samples = (folder / "samples.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(samples) == 100 and any(samples)
    for line in samples:  # decoded up to <eos>
        assert set(line.split()) <= set(vocab.tokens) - {"<eos>"} and len(line.split()) <= T
    assert (folder / "curve.png").read_bytes().startswith(b"\x89PNG")
    # The final models drive an env that ends at <eos> and renders words.
    # (the checkpoint carries the vocabulary: its tokens and <eos> need not be passed again)
    env = SeqGANEnv(checkpoint=str(folder / "final.pt"), render_mode="ansi", n_rollouts=2)
    assert env.eos_id == vocab.eos_id and env.vocabulary == list(vocab.tokens)
    env.reset(seed=0)
    env.step(vocab.id_of("cat"))
    assert env.render() == "cat"
    *_, terminated, _, info = env.step(vocab.eos_id)
    assert terminated and info["sequence"][:2].tolist() == [vocab.id_of("cat"), vocab.eos_id]

    sampled = subprocess.run([sys.executable, str(SAMPLE), str(folder), "-n", "7", "--seed", "1"],
                             capture_output=True, text=True, timeout=HANG_GUARD, cwd=ROOT)  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr
    lines = sampled.stdout.split("\n")[:-1]
    assert len(lines) == 7 and all(set(line.split()) <= set(vocab.tokens) for line in lines)


def test_sample_options_and_oracle_runs(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]):
    oracle_run = ["--mle-epochs", "1", "--rounds", "0", "--disc-pretrain-repeats", "0",
                  "--eval-samples", "32"]  # fmt: skip
    code, _, err = run_main(capsys, *FAST, *oracle_run, "--out", str(tmp_path), "--name", "oracle")
    assert code == 0, err
    code, out, _ = run_main(capsys, str(tmp_path / "oracle"), "-n", "3", "--seed", "0", script=SAMPLE)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert all(len(line.split()) == T and all(0 <= int(t) < 50 for t in line.split()) for line in lines)
    seeded = [run_main(capsys, str(tmp_path / "oracle"), "-n", "4", "--seed", "5", "--temperature", "0.7",
                       "--checkpoint", c, script=SAMPLE)[1] for c in ("mle", "mle", "latest")]  # fmt: skip
    assert seeded[0] == seeded[1] and len(seeded[2].splitlines()) == 4

    code, _, err = run_main(capsys, str(tmp_path), script=SAMPLE)
    assert code == 2 and "not a run folder" in err
    (tmp_path / "oracle" / "final.pt").unlink()
    code, _, err = run_main(capsys, str(tmp_path / "oracle"), script=SAMPLE)
    assert code == 2 and "no final.pt" in err and "--checkpoint" in err
    help_text = subprocess.run([sys.executable, str(SAMPLE), "--help"], capture_output=True, text=True,
                               timeout=HANG_GUARD, cwd=ROOT).stdout  # fmt: skip
    for option in ("RUN_DIR", "-n", "--temperature", "--checkpoint", "final", "latest", "mle"):
        assert option in help_text


def test_resume_checks_the_corpus(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]):
    args = [*FAST, "--data", str(corpus), "--mle-epochs", "1", "--rounds", "0", "--out", str(tmp_path),
            "--name", "run"]  # fmt: skip
    assert run_main(capsys, *args)[0] == 0
    code, out, err = run_main(capsys, "--resume", str(tmp_path / "run"))
    assert code == 0 and "resuming" in out, err
    write_corpus(corpus, seed=1, lines=5)  # fewer lines: other word counts, another vocabulary order
    corpus.write_text(corpus.read_text() + "a brand new word\n")
    code, _, err = run_main(capsys, "--resume", str(tmp_path / "run"))
    assert code == 2 and "no longer gives the vocabulary" in err


def test_max_vocab_caps_the_vocabulary(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]):
    code, _, err = run_main(capsys, *FAST, "--data", str(corpus), "--max-vocab", "8", "--level", "word",
                            "--mle-epochs", "1", "--rounds", "0", "--out", str(tmp_path),
                            "--name", "r")  # fmt: skip
    assert code == 0, err
    vocab = Vocabulary.load(tmp_path / "r" / "vocab.json")
    assert vocab.size == 8 and json.loads((tmp_path / "r" / "config.json").read_text())["vocab_size"] == 8
    assert (load_checkpoint(tmp_path / "r" / "final.pt")["data"]["real"] == vocab.unk_id).any()


# --- bad input: exit code 2, a clear message, and no run folder ------------------------------------------
@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"", [], "empty"),
        (b"\n  \n", [], "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", [], "binary"),
        (b"caf\xe9 au lait\n", [], "not valid UTF-8"),
        (b"only one line\n", [], "no held-out lines"),
        (None, ["--max-vocab", "3"], "--max-vocab must be > 3"),
        (None, ["--vocab-size", "50"], "--vocab-size does not apply with --data"),
        (None, ["--oracle", "x.npz"], "--data and --oracle exclude each other"),
        (None, ["--level", "byte"], "argument --level: invalid choice: 'byte'"),
        (None, ["--test-fraction", "0"], "--test-fraction must be in (0, 1)"),
        (None, ["--reward", "gan"], "argument --reward: invalid choice: 'gan'"),
        (None, ["--reward", "bleu", "--mode", "mle"], "--reward bleu"),
        (None, ["--bleu-samples", "1"], "--bleu-samples must be >= 2"),
    ],
)
def test_bad_text_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, args: list[str], message: str
) -> None:
    path = tmp_path / "data.txt"
    if content is None:
        write_corpus(path)
    else:
        path.write_bytes(content)
    out = tmp_path / "runs"
    code, _, err = run_main(capsys, *FAST, "--data", str(path), *args, "--out", str(out))
    assert code == 2 and err.startswith("error:") and message in err, err
    assert not out.exists()


def test_missing_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "runs"
    code, _, err = run_main(capsys, *FAST, "--data", str(tmp_path / "none.txt"), "--out", str(out))
    assert code == 2 and "corpus file not found" in err and not out.exists()


def test_help_lists_the_text_options():
    help_text = subprocess.run([sys.executable, str(TRAIN), "--help"], capture_output=True, text=True,
                               timeout=HANG_GUARD, cwd=ROOT).stdout  # fmt: skip
    options = ("--data", "--level", "--max-vocab", "--test-fraction", "--reward", "--bleu-n",
               "--bleu-samples", "--self-bleu-samples")
    for option in options:
        assert option in help_text


# --- the yardstick: the real held-out lines' own BLEU and Self-BLEU --------------------------------------
def test_real_lines_are_scored_as_the_samples_are():
    """BLEU-n of the real lines: each held-out line against all the others (leave-one-out); Self-BLEU-n
    of a subset of them against each other; both as the generator's samples are scored."""
    lines = [[5, 6, 7, 8], [5, 6, 7, 9], [3, 4], [5, 6, 7, 8], [9, 9, 9]]
    pad = 10
    test = torch.tensor([row + [1] + [pad] * (5 - len(row)) for row in lines])  # <eos> 1, then padding
    scores = real_text_scores(test, n_sentences=100, self_bleu_samples=None, eos_id=1, pad_id=pad)
    for n in (2, 3, 4, 5):
        leave_one_out = [bleu([line], lines[:i] + lines[i + 1:], n) for i, line in enumerate(lines)]
        assert scores[f"bleu{n}"] == pytest.approx(sum(leave_one_out) / len(lines), abs=1e-12)
        assert scores[f"self_bleu{n}"] == pytest.approx(self_bleu(lines, n), abs=1e-12)
    subset = real_text_scores(test, n_sentences=2, self_bleu_samples=None, eos_id=1, pad_id=pad, seed=3)
    chosen = sorted(random.Random(3).sample(range(5), 2))
    assert subset["self_bleu4"] == pytest.approx(self_bleu([lines[i] for i in chosen], 4), abs=1e-12)
    one = real_text_scores(test[:1], n_sentences=100, self_bleu_samples=None, eos_id=1, pad_id=pad)
    assert all(math.isnan(v) for v in one.values())  # no other line to compare with


def test_signal_png_draws_only_panels_with_data():
    """A text run measures only the discriminator's accuracy and AUC: one panel, not four empty ones."""
    nan = float("nan")
    text_rows = [{"phase": "adversarial", "step": s, "d_accuracy": 0.5, "d_auc": 0.6,
                  **{k: nan for k in SIGNAL_FIELDS if not k.startswith("d_")}} for s in (0, 2)]  # fmt: skip
    assert [title for title, *_ in signal_panels(text_rows)] == ["real vs generated (0.5: chance)"]
    oracle_rows = [{**r, **{k: 0.3 for k in SIGNAL_FIELDS}} for r in text_rows]
    assert len(signal_panels(oracle_rows)) == 4
    terminal = [{**r, "q_oracle_spearman": nan, "q_signal_share": nan, "pg_constant_norm": nan,
                 "pg_centred_norm": nan, "pg_centred_cos": nan} for r in oracle_rows]  # fmt: skip
    panels = signal_panels(terminal)  # no Monte Carlo search: no Q_t curve, no Q_t or gradient panel
    assert [(title, [name for name, _ in curves]) for title, curves, *_ in panels] == [
        ("real vs generated (0.5: chance)", ["accuracy", "AUC"]),
        ("Spearman with the oracle's log-likelihood", ["reward D(y)"]),
    ]
