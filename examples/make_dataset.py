"""Make a tiny captioned dataset: fixed-seed coloured squares and circles, one .txt caption each.

python examples/make_dataset.py ~/datasets/shapes --count 16
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 60, 220),
    "yellow": (230, 210, 40),
}


def make(folder: Path, count: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(count):
        colour = list(COLOURS)[i % len(COLOURS)]
        shape = ("square", "circle")[(i // len(COLOURS)) % 2]
        image = Image.new("RGB", (size, size), (245, 245, 245))
        draw = ImageDraw.Draw(image)
        x = rng.randint(2, size // 3)
        side = rng.randint(size // 3, size // 2)
        box = [x, x, x + side, x + side]
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=COLOURS[colour])
        image.save(folder / f"shape{i:03d}.png")
        (folder / f"shape{i:03d}.txt").write_text(f"a {colour} {shape} on a white background")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make(args.folder.expanduser(), args.count, args.size, args.seed)
    print(f"wrote {args.count} images with captions to {args.folder}")


if __name__ == "__main__":
    main()
