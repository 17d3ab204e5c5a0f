#!/usr/bin/env bash
# Everything CI runs, in stages, from a fresh clone: `bash .ci/test.sh` (all stages), or name some:
# `bash .ci/test.sh lint types tests`. The README's test command and .ci/run call this file.
#
#   install  pip install the project with the [test] extra (torch pinned: see TORCH below)
#   lint     ruff (rules and line length in pyproject.toml), the whole repository
#   types    mypy (every function typed), seqgan_env, agents and train
#   tests    pytest, every test (Ray's and TorchRL's skip here: they are not installed), on two workers
#            (pytest-xdist): most tests run a script in a single-threaded child process, so two
#            workers use a 2-core machine's both cores
#   extras   a second venv, .venv-rllib, with the [rllib] and [torchrl] extras (Ray pins gymnasium
#            1.2.2 where `install` gets the newest), and there the tests of EXTRAS_TESTS
#
# Any failing command stops the script with its exit status (set -e), a pipeline's included
# (pipefail); pytest exits 5 when it collected no test, so zero tests fail too.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
# The project's machines install torch 2.13.0's CPU build from a local file; any requirement that lets
# pip choose a newer torch downloads gigabytes of CUDA wheels. Elsewhere, TORCH=torch keeps yours.
TORCH="${TORCH:-torch==2.13.0}"
# The tests that touch Ray RLlib, TorchRL or gymnasium's own behaviour: run again on Ray's gymnasium.
EXTRAS_TESTS=(tests/test_env.py tests/test_vector_env.py tests/test_wrappers.py tests/test_sb3.py
              tests/test_rllib.py tests/test_torchrl.py)
VENV=.venv-rllib

stage_install() { "$PYTHON" -m pip install "$TORCH" -e ".[test]"; }
stage_lint() { "$PYTHON" -m ruff check .; }
stage_types() { "$PYTHON" -m mypy; }
stage_tests() { "$PYTHON" -m pytest -q -n 2; }
stage_extras() {
    "$PYTHON" -m venv --system-site-packages "$VENV"
    "$VENV/bin/python" -m pip install "$TORCH" -e ".[test,rllib,torchrl]"
    "$VENV/bin/python" -c "import ray.rllib, torchrl"  # an extra that did not install fails here, not as skips
    "$VENV/bin/python" -m pytest -q "${EXTRAS_TESTS[@]}"
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(install lint types tests extras)
for stage in "${stages[@]}"; do
    case "$stage" in
        install | lint | types | tests | extras) ;;
        *) echo "error: unknown stage '$stage' (install, lint, types, tests, extras)" >&2; exit 2 ;;
    esac
done
for stage in "${stages[@]}"; do
    echo "=== $stage" >&2
    "stage_$stage"
done
