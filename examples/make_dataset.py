"""Make a tiny captioned dataset: fixed-seed coloured squares and circles, one .txt caption each.

python examples/make_dataset.py ~/datasets/shapes --count 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cloudtune.trainer.reference.sample_data import make_shapes_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make_shapes_dataset(args.folder.expanduser(), args.count, size=args.size, seed=args.seed)
    print(f"wrote {args.count} images with captions to {args.folder}")


if __name__ == "__main__":
    main()
