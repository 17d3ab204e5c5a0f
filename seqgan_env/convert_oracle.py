"""Convert the paper's oracle parameters to a checked `.npz`:

    python -m seqgan_env.convert_oracle target_params_py3.pkl target_params.npz

The reference repository ships the oracle as `save/target_params_py3.pkl`; `load_oracle` (and every
`--oracle` option) reads that pickle directly through a restricted unpickler, so converting is only
for keeping a plain numpy copy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqgan_env.oracle import convert


def _path(text: str) -> Path:
    """A path argument; an empty one is refused (it would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    return Path(text)


def main(argv: list[str] | None = None) -> int:
    """Convert SOURCE to TARGET; 0 on success, 2 with a one-line error on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m seqgan_env.convert_oracle",
        description="Read the paper oracle's 15 arrays from SOURCE (the reference repository's "
        "save/target_params_py3.pkl, read by a restricted unpickler that admits numpy arrays only, or an "
        ".npz), check them and write them to TARGET (.npz).",
    )
    parser.add_argument("source", type=_path, help="the parameter file to read (.pkl or .npz)")
    parser.add_argument("target", type=_path, help="the .npz file to write")
    parser.add_argument("--force", action="store_true", help="overwrite TARGET if it exists")
    args = parser.parse_args(argv)
    try:
        arrays = convert(args.source, args.target, force=args.force)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    (vocab_size, embed_dim), hidden_dim = arrays["embedding"].shape, arrays["Ui"].shape[0]
    print(f"wrote {args.target}: vocabulary {vocab_size}, embedding {embed_dim}, hidden {hidden_dim}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
