#!/usr/bin/env bash
# Download, here, the wheels the GPU machine's image lacks (it has torch, numpy, pandas, tqdm,
# tensorboard, matplotlib; not gymnasium or Stable-Baselines3; pytest-xdist, which runs the GPU tests
# on several workers, and cloudpickle, which SB3 needs, may be missing too) into .whl/ (ignored by git: name it in
# the device call's carry), for its Python 3.12: the versions this project's CPU suite runs with.
# bench/gpu_check.sh installs them there.
set -eu
cd "$(dirname "$0")/.."
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl \
    "gymnasium==1.4.0" "farama-notifications==0.0.4" "stable-baselines3==2.9.2" "sb3-contrib==2.9.2" \
    "cloudpickle==3.1.3" "pytest-xdist==3.8.0" "execnet==2.1.2"
ls .whl
