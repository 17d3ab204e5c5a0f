"""train/sample.py on a checkpoint whose generator claims a sequence length no machine could sample:
one line, before anything is allocated (it was a "can't allocate memory" traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_lstm
from test_bad_input import check_message, fake_run, load_script, run_main

from seqgan_env.checkpoint import model_entry, save_checkpoint


def test_a_checkpoint_claiming_a_huge_length_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = fake_run(tmp_path / "run")
    entry = model_entry(tiny_lstm(1))
    entry["config"]["seq_len"] = 10**12  # the weights do not depend on the length: they still load
    save_checkpoint(run / "final.pt", {"generator": entry})
    code, out, err = run_main(load_script("sample"), [str(run), "-n", "3"], capsys)
    assert code == 2 and out == "", (code, out, err)
    check_message(err.strip(), r"^error: these sizes need about .* GiB.*: lower the sequence length "
                  r"1000000000000 in .*final\.pt", tmp_path)  # fmt: skip
    entry["config"]["seq_len"] = 4
    save_checkpoint(run / "final.pt", {"generator": entry})
    code, out, err = run_main(load_script("sample"), [str(run), "-n", "3"], capsys)
    assert code == 0 and len(out.splitlines()) == 3, (code, out, err)
