"""The benchmarks run end to end at tiny sizes and their built-in checks pass (ours computes what the
baseline computes). Timings at these sizes mean nothing; the paper-size figures come from the commands
in the README."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import HANG_GUARD

BENCH = Path(__file__).resolve().parents[1] / "bench"
TINY = ["--threads", "1", "--matmul-size", "128", "--matmul-repeats", "2"]


def run_bench(script: str, *args: str, save: str = "") -> str:
    result = subprocess.run([sys.executable, str(BENCH / script), *args, *TINY, "--save", save],
                            capture_output=True, text=True, timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_bench_rewards_ours_and_the_reference_estimate_the_same_q():
    out = run_bench(
        "bench_rewards.py", "--repeats", "2", "--batch", "6", "--vocab-size", "40", "--seq-len", "8",
        "--n-rollouts", "6",
    )  # fmt: skip
    assert "CONSISTENT: both estimate the same Q" in out, out[-3000:]
    assert re.search(r"SPEED-UP baseline / ours: [0-9.]+x", out)
    assert re.search(r"one draw per row from \[36, 40\] logits.*\n(.*ms\n){3}  RATIO one cumsum / in blocks: "
                     r"[0-9.]+x a draw", out)
    counts = re.findall(r"(CPU|GPU), .* ([0-9,]+), of which its 7 searches +([0-9,]+)\n", out)
    assert [kind for kind, *_ in counts] == ["CPU", "GPU"], out[-1500:]
    for _, total, searches in counts:
        assert 0 < int(searches.replace(",", "")) < int(total.replace(",", ""))


def test_bench_discriminator_prints_every_variant_against_the_matmul():
    out = run_bench(
        "bench_discriminator.py", "--repeats", "2", "--block", "1", "--batch", "8", "--vocab-size", "40",
        "--seq-len", "8", "--score-batch", "16", "--score-repeats", "2", "--warmup", "1",
        "--bf16-repeats", "1", "--profile", "1",
    )  # fmt: skip
    for variant in ("ours: unfolded windows", "nn.Conv1d layers", "Adam() defaults", "Adam(foreach=True)"):
        assert re.search(re.escape(variant) + r".* ms/step .*% of matmul", out), variant
    assert re.search(r"OURS: [0-9.]+ GFLOP/s = [0-9.]+% of the matmul measured alongside", out)
    bf16 = out[out.index("bf16 (--precision bf16)") :]
    for variant in ("ours", "highway's two products as one", "filters grouped", "all filters one product"):
        pattern = re.escape(variant) + r".* ms/step .*% of the bf16 matmul; RATIO to ours in fp32"
        assert re.search(pattern, bf16), variant
    for precision in ("fp32", "bf16"):
        assert re.search(rf"profile of ours in {precision}, 1 steps .*: [0-9.]+ ms a step\n  aten::", out)


def test_bench_allocator_times_both_settings_in_alternating_processes():
    out = run_bench("bench_allocator.py", "--repeats", "1", "--steps", "2", "--vocab-size", "40")
    for precision in ("fp32", "bf16"):
        assert re.search(rf"{precision} glibc's own +[0-9.]+ ms a step .* page faults a step", out), out
        if sys.platform.startswith("linux"):  # glibc: the setting applies in the processes that keep it
            assert re.search(rf"{precision} setting kept +[0-9.]+ ms a step", out), out
            assert re.search(rf"{precision} RATIO glibc's own / setting kept: [0-9.]+x", out), out


def test_bench_env_final_rewards_of_native_and_sync_agree():
    out = run_bench(
        "bench_env.py", "--num-envs", "3", "--vocab-size", "40", "--seq-len", "6", "--n-rollouts", "3",
        "--episodes", "1",
    )  # fmt: skip
    diff = re.search(r"final reward D\(y\) native vs sync, max \|difference\| ([0-9.e+-]+)", out)
    assert diff is not None, out[-3000:]
    assert float(diff.group(1)) < 1e-5


def test_bench_sb3_adapter_and_dummy_vec_env_agree():
    pytest.importorskip("stable_baselines3")
    out = run_bench(
        "bench_sb3.py", "--num-envs", "3", "--vocab-size", "40", "--seq-len", "6", "--n-rollouts", "2",
    )  # fmt: skip
    diff = re.search(r"adapter vs dummy, max \|difference\| ([0-9.e+-]+)", out)
    assert diff is not None, out[-3000:]
    assert float(diff.group(1)) < 1e-5


def test_a_benchmark_names_its_machine_and_saves_it_beside_its_figures(tmp_path: Path):
    out = run_bench("common.py", save=str(tmp_path / "common"))
    assert re.search(r"machine: \d+ cores \(.+\), torch CPU kernels \w+, bf16 units: .+ threads", out, re.S)
    record = json.loads((tmp_path / "common.json").read_text())
    machine = record["machine"]
    for key in ("cpu_model", "cpu_capability", "cpu_amx_tile", "torch", "torch_threads"):
        assert key in machine, key
    assert machine["torch_threads"] == 1 and record["command"].startswith("python bench/common.py")
    assert (tmp_path / "common.txt").read_text() == out  # the figures, as printed


def test_bench_gpu_runs_its_parts_at_tiny_size_on_the_cpu():
    out = run_bench("bench_gpu.py", "--device", "cpu", "--tiny", "--d-steps", "2", "--compile")
    assert re.search(r"plain fp32 +[0-9.]+ ms/step .*% of the fp32 matmul", out), out[-3000:]
    assert re.search(r"compiled bf16 +[0-9.]+ ms/step", out) and "failed" not in out, out[-3000:]
    # All filters as one product dispatch fewer operators a step than one product per filter.
    ops = dict(re.findall(r"plain (bf16(?: one-product)?) +[0-9.]+ ms/step +(\d+) ops", out))
    assert int(ops["bf16 one-product"]) < int(ops["bf16"]), out[-3000:]
    round_line = (r"one paper round \(fp32\): generator step [0-9.]+ s, .* round [0-9.]+ s\n"
                  r"  a generator step: \d+ ops")
    assert re.search(round_line, out), out[-3000:]
    # what a time limit should keep comes first: the rounds before the compiled steps
    assert out.index("one paper round (fp32)") < out.index("\ncompiled:\n") < out.index("compiled bf16")


def test_bench_gpu_divides_a_timed_fit_by_its_steps(monkeypatch):
    """Each variant's figure is a timed `fit` over its number of steps: with every fit timed at 1 s,
    every variant reports 1 s / (steps + 8) (the timed pass is `steps` + 8 full batches)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_gpu

    monkeypatch.setattr(bench_gpu, "timed", lambda fn, device: 1.0)  # the fit is not even run
    times = bench_gpu.d_step_times(bench_gpu.TINY, torch.device("cpu"), steps=2)
    assert set(times) == {"plain fp32", "plain bf16", "plain bf16 one-product"}
    assert all(seconds == pytest.approx(1 / 10) for seconds, _ in times.values()), times


def test_bench_gpu_times_the_rounds_in_the_precisions_asked_for():
    out = run_bench("bench_gpu.py", "--device", "cpu", "--tiny", "--d-steps", "1",
                    "--round-precisions", "bf16")  # fmt: skip
    assert re.findall(r"one paper round \((\w+)\)", out) == ["bf16"], out[-3000:]
    assert "projected paper experiment (bf16)" in out


def test_a_benchmark_stopped_by_its_time_limit_keeps_what_it_printed(tmp_path: Path):
    """`timeout` ends a benchmark with SIGTERM (bench/gpu_check.sh gives each part a limit): the passes
    measured so far are in its saved output, and it exits with 128 + SIGTERM as a killed process would."""
    command = [sys.executable, "-u", str(BENCH / "bench_gpu.py"), "--device", "cpu", "--tiny",
               "--d-steps", "2", "--skip-round", *TINY, "--save", str(tmp_path / "b")]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as bench:
        assert bench.stdout is not None
        for line in bench.stdout:  # wait until the first measurement is printed
            if line.startswith("    pass 1, "):
                break
        bench.send_signal(signal.SIGTERM)
        bench.stdout.read()
        assert bench.wait(timeout=HANG_GUARD) == 128 + signal.SIGTERM
    assert "    pass 1, plain fp32: " in (tmp_path / "b.txt").read_text()
    assert json.loads((tmp_path / "b.json").read_text())["command"].startswith("python bench/bench_gpu.py")


GPU_CHECK_FILES = {
    "all": ["bench_gpu.json", "bench_gpu.txt", "comparison.md", "comparison.png", "machine.txt", "paper.log",
            "paper_runs.tar.gz", "test_gpu.log"],
    "session": ["bench_gpu.json", "bench_gpu.txt", "machine.txt", "seqgan.log", "seqgan_metrics.csv",
                "test_gpu.log"],
}  # fmt: skip


@pytest.mark.parametrize("part", ["all", "session"])
def test_the_gpu_check_script_runs_end_to_end_at_tiny_size_on_the_cpu(tmp_path: Path, part: str):
    """bench/gpu_check.sh, as a GPU session runs it, with the tiny preset on the CPU: its files land
    flat in OUT (the device machine returns at most 8, none in a subfolder)."""
    env = {"OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"), "PRESET": "tiny", "DEVICE": "cpu",
           "ORACLE": "none", "BENCH_ARGS": "--device cpu --tiny --d-steps 2"}  # fmt: skip
    result = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), part], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=1800)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == GPU_CHECK_FILES[part]
    if part == "all":
        assert "| SeqGAN | 4 |" in (tmp_path / "out" / "comparison.md").read_text()
    else:  # the SeqGAN run went through its 4 rounds in the time left
        last = (tmp_path / "out" / "seqgan_metrics.csv").read_text().splitlines()[-1]
        assert last.startswith("adversarial,4,"), last
        assert "after 4 rounds" in (tmp_path / "out" / "seqgan.log").read_text()


def test_bench_mle_sets_a_step_against_its_output_layer_products():
    out = run_bench("bench_mle.py", "--batch", "4", "--vocab-size", "40", "--seq-len", "5", "--repeats", "2",
                    "--bf16-repeats", "1")  # fmt: skip
    steps = ("step fp32 (torch cross_entropy)", "step fp32, fused loss", "step bf16 (autocast, fused loss)")
    for name in steps:
        assert re.search(re.escape(f"RATIO {name} / the three products: ") + r"[0-9.]+x", out), name


def write_run(folder: Path, values: list[float], se: float = 0.01) -> str:
    """A run folder whose metrics.csv holds NLL-oracle `values` at adversarial steps 0, 5, ..."""
    folder.mkdir(parents=True)
    rows = ["phase,step,nll_oracle,nll_oracle_se"]
    rows += [f"adversarial,{5 * i},{v},{se}" for i, v in enumerate(values)]
    rows.append("adversarial,99,nan,nan")  # a non-finite row is left out
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    return str(folder)


def test_compare_curves_measures_the_difference_against_the_seeds_spread(tmp_path):
    base = [write_run(tmp_path / f"b{i}", [8.0 + d, 7.0 + d]) for i, d in enumerate((0.0, 0.02))]
    other = [write_run(tmp_path / f"o{i}", [8.05 + d, 7.0 + d]) for i, d in enumerate((0.0, 0.04))]
    groups = [f"fp32={','.join(base)}", f"bf16={','.join(other)}"]
    result = subprocess.run([sys.executable, str(BENCH / "compare_curves.py"), *groups],
                            capture_output=True, text=True, timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Step 0: means 8.01 and 8.07; variances 0.0002 and 0.0008 over 2 runs each: SE sqrt(0.0005) = 0.02236.
    assert "adversarial     0  fp32 8.0100 | bf16 +0.0600 (z +2.7; seeds +3.5 +4.9)" in result.stdout
    assert "adversarial     5  fp32 7.0100 | bf16 +0.0100 (z +0.4; seeds +0.0 +1.4)" in result.stdout
    assert "LARGEST |z| of the mean difference, bf16 against fp32: 2.68 over 2 evaluations" in result.stdout
    assert "99" not in result.stdout


def test_compare_curves_refuses_a_folder_without_metrics(tmp_path):
    run = write_run(tmp_path / "run", [8.0])
    result = subprocess.run([sys.executable, str(BENCH / "compare_curves.py"), f"a={run}", f"b={tmp_path}"],
                            capture_output=True, text=True, timeout=HANG_GUARD)  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith(f"error: {tmp_path}: no metrics.csv")
