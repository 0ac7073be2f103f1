"""A tiny captioned dataset made on the spot: fixed-seed coloured squares and circles on white,
one `.txt` caption beside each image. What the examples and the tests train on."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 60, 220),
    "yellow": (230, 210, 40),
}


def make_shapes_dataset(
    folder: Path, count: int = 16, *, size: int = 64, seed: int = 0, prefix: str = "img"
) -> Path:
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
        image.save(folder / f"{prefix}{i}.png")
        (folder / f"{prefix}{i}.txt").write_text(f"a {colour} {shape} on a white background")
    return folder
