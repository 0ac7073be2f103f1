"""Images and captions from a run's local datasets (SimpleTuner's multidatabackend format)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


@dataclass(frozen=True, slots=True)
class Sample:
    path: Path
    caption: str


def collect_samples(dataloader: list[dict[str, Any]]) -> list[Sample]:
    samples: list[Sample] = []
    for entry in dataloader:
        if entry.get("disabled") or entry.get("type", "local") != "local":
            continue
        if entry.get("dataset_type", "image") != "image":
            continue
        folder = Path(os.path.realpath(Path(str(entry["instance_data_dir"])).expanduser()))
        strategy = entry.get("caption_strategy", "filename")
        instance_prompt = entry.get("instance_prompt")
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not _inside(path, folder):
                continue
            samples.append(Sample(path, _caption(path, folder, strategy, instance_prompt)))
    if not samples:
        raise ValueError("the datasets hold no images (.png, .jpg, .jpeg, .webp, .bmp)")
    return samples


def _inside(path: Path, folder: Path) -> bool:
    """A regular file whose real location is inside the dataset folder. The server checked the
    folder when the job was submitted; a link made since then that leads out of it (to the
    server's own files, say) is not followed."""
    real = Path(os.path.realpath(path))
    return real.is_relative_to(folder) and real.is_file()


def _caption(path: Path, folder: Path, strategy: str, instance_prompt: str | None) -> str:
    if strategy == "textfile":
        text_file = path.with_suffix(".txt")
        if _inside(text_file, folder):
            return text_file.read_text(encoding="utf-8", errors="replace").strip()
        return _caption_from_filename(path)
    if strategy == "instanceprompt" and instance_prompt:
        return str(instance_prompt)
    return _caption_from_filename(path)


def _caption_from_filename(path: Path) -> str:
    stem = re.sub(r"[_\-]+", " ", path.stem)
    return re.sub(r"\s*\d+$", "", stem).strip() or path.stem


def load_images(samples: list[Sample], resolution: int) -> torch.Tensor:
    """All images as one (N, 3, R, R) tensor in [-1, 1], resized and centre-cropped."""
    tensors = [_load(sample.path, resolution) for sample in samples]
    return torch.stack(tensors)


def _load(path: Path, resolution: int) -> torch.Tensor:
    with Image.open(path) as opened:
        image = opened.convert("RGB")
        width, height = image.size
        scale = resolution / min(width, height)
        size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
        left = (image.width - resolution) // 2
        top = (image.height - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
        array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def save_image(tensor: torch.Tensor, path: Path) -> None:
    array = ((tensor.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(array).save(path)
