"""seqgan_env.text: vocabulary layout, encode/decode, corpus loading and its errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from seqgan_env.text import (
    BOS_ID,
    EOS_ID,
    UNK_ID,
    CorpusError,
    Vocabulary,
    VocabularyTooLargeError,
    build_vocabulary,
    check_fits,
    decode,
    encode,
    load_corpus,
    normalize,
)

LINES = [
    "naïve café 日本語 🙂",
    "",
    "the cat sat on the mat",
    "   ",
    "the  dog\tsat",
    " ".join(f"long{i}" for i in range(500)),  # very long line
    "café 🙂 the",
]


def write(tmp_path, text: str | bytes, name: str = "corpus.txt"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_layout():
    vocab = build_vocabulary(["b a b"])
    assert vocab.tokens[:3] == ("<bos>", "<eos>", "<unk>")
    assert (vocab.bos_id, vocab.eos_id, vocab.unk_id) == (BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2)
    assert vocab.tokens[3:] == ("b", "a")  # most frequent first
    assert vocab.size == len(vocab) == 5
    assert vocab.pad_id == vocab.size  # pad is one past the action space


def test_word_round_trip(tmp_path):
    corpus = load_corpus(write(tmp_path, "\n".join(LINES) + "\n"), "word", seq_len=12,
                         test_fraction=0.0)
    vocab = corpus.vocab
    assert corpus.train.dtype == np.int64 and corpus.train.shape == (5, 12)  # blanks skipped
    assert corpus.test.shape == (0, 12)
    for line in ["naïve café 日本語 🙂", "the  dog\tsat", "café 🙂 the"]:
        ids = encode(line, vocab, 12)
        assert decode(ids, vocab) == normalize(line, "word")
        assert UNK_ID not in ids
    decoded = {decode(row, vocab) for row in corpus.train}
    assert "the dog sat" in decoded
    # the long line is truncated; words past seq_len are not in the vocabulary
    assert "long11" in vocab.tokens and "long12" not in vocab.tokens
    assert encode("long499", vocab, 12)[0] == UNK_ID
    # bos is never emitted by data
    assert not (corpus.train == BOS_ID).any()


def test_char_level(tmp_path):
    corpus = load_corpus(write(tmp_path, "naïve café\n日本語 🙂\n\nab\n"), "char",
                         seq_len=12, test_fraction=0.0)
    vocab = corpus.vocab
    assert vocab.level == "char" and "🙂" in vocab.tokens and " " in vocab.tokens
    for line in ["naïve café", "日本語 🙂", " ab "]:
        assert decode(encode(line, vocab, 12), vocab) == normalize(line, "char")
    # NFC normalisation: decomposed "i" + combining diaeresis is the same token as "ï"
    assert encode("nai\u0308ve", vocab, 5) == encode("naïve", vocab, 5)


def test_size_limit_maps_rest_to_unk():
    vocab = build_vocabulary(["a a a b b c d", "d e"], max_size=5)
    # counts a3 b2 d2 c1 e1 -> keep a, then b/d tie broken by first occurrence -> b
    assert vocab.tokens == ("<bos>", "<eos>", "<unk>", "a", "b")
    assert encode("a d e", vocab, 4) == [3, UNK_ID, UNK_ID, EOS_ID]
    with pytest.raises(ValueError, match="max_size"):
        build_vocabulary(["a"], max_size=3)


def test_encode_pads_ends_truncates():
    vocab = build_vocabulary(["x y z"])
    x, y, z, pad = vocab.id_of("x"), vocab.id_of("y"), vocab.id_of("z"), vocab.pad_id
    assert encode("x y", vocab, 5) == [x, y, EOS_ID, pad, pad]
    assert encode("x y z", vocab, 3) == [x, y, z]  # exactly seq_len: no room for eos
    assert encode("x y z x", vocab, 2) == [x, y]  # truncated, no eos
    assert encode("", vocab, 3) == [EOS_ID, pad, pad]
    assert encode("x <eos> <bos>", vocab, 4) == [x, UNK_ID, UNK_ID, EOS_ID]  # spelled specials
    assert decode([x, y, pad, z], vocab) == "x y"  # stops at pad
    assert decode(np.array([x, EOS_ID, z]), vocab) == "x"  # stops at eos
    with pytest.raises(ValueError, match="seq_len"):
        encode("x", vocab, 0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        decode([pad + 1], vocab)


def test_save_load_and_dict_round_trip(tmp_path):
    vocab = build_vocabulary(LINES, "word")
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocabulary.load(path) == vocab
    buf = io.BytesIO()
    torch.save({"vocab": vocab.to_dict()}, buf)
    buf.seek(0)
    assert Vocabulary.from_dict(torch.load(buf, weights_only=True)["vocab"]) == vocab
    with pytest.raises(ValueError, match="not a vocabulary"):
        Vocabulary.from_dict({"tokens": ["a"]})


def test_split_is_seeded(tmp_path):
    path = write(tmp_path, "\n".join(f"s{i} t" for i in range(50)))
    a = load_corpus(path, seq_len=4, test_fraction=0.2, seed=7)
    b = load_corpus(path, seq_len=4, test_fraction=0.2, seed=7)
    c = load_corpus(path, seq_len=4, test_fraction=0.2, seed=8)
    assert a.train.shape == (40, 4) and a.test.shape == (10, 4)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)
    all_rows = {tuple(r) for r in np.concatenate([a.train, a.test])}
    assert len(all_rows) == 50


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "empty"),
        ("\n  \n\t\n", "blank"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("café".encode("latin-1") + b"\n", "UTF-8"),
    ],
)
def test_bad_files(tmp_path, content, match):
    with pytest.raises(CorpusError, match=match):
        load_corpus(write(tmp_path, content))


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope.txt")
    assert issubclass(CorpusError, ValueError)
    path = write(tmp_path, "a b c\n")
    with pytest.raises(ValueError, match="seq_len"):
        load_corpus(path, seq_len=0)
    with pytest.raises(ValueError, match="level"):
        load_corpus(path, level="byte")
    with pytest.raises(ValueError, match="test_fraction"):
        load_corpus(path, test_fraction=1.0)


def test_vocabulary_too_large(tmp_path):
    vocab = build_vocabulary(["a b c d e"])  # V = 8
    check_fits(vocab, 8)
    with pytest.raises(VocabularyTooLargeError, match="8 ids.*only 6"):
        check_fits(vocab, 6)
    with pytest.raises(ValueError, match="max_size=6"):
        load_corpus(write(tmp_path, "a b c d e\n"), model_vocab_size=6)
