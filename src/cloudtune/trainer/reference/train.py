"""The reference training loop: flow matching on a frozen tiny model with LoRA adapters."""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from cloudtune.trainer.progress import ProgressReporter
from cloudtune.trainer.reference.data import collect_samples, load_images, save_image
from cloudtune.trainer.reference.model import add_lora, build_base_model, lora_state_dict

LORA_FILE = "pytorch_lora_weights.safetensors"
REPORT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class RunConfig:
    output_dir: Path
    max_train_steps: int
    lora_rank: int
    lora_alpha: float
    resolution: int
    checkpointing_steps: int
    learning_rate: float
    batch_size: int
    seed: int
    num_samples: int
    base_weights: str | None

    @classmethod
    def from_run_dir(cls, run_dir: Path, device: torch.device) -> RunConfig:
        raw = json.loads((run_dir / "config.json").read_text())
        args = {k.removeprefix("--"): v for k, v in raw.items()}
        datasets = json.loads((run_dir / "multidatabackend.json").read_text())
        resolution = int(args.get("resolution") or _dataset_resolution(datasets) or 64)
        cap = int(os.environ.get("CLOUDTUNE_TRAINER__CPU_MAX_RESOLUTION", "64"))
        if device.type == "cpu" and resolution > cap:
            print(f"resolution {resolution} capped to {cap} on the CPU", flush=True)
            resolution = cap
        resolution = max(8, resolution - resolution % 4)
        rank = int(args.get("lora_rank") or 4)
        base = args.get("pretrained_model_name_or_path")
        return cls(
            output_dir=Path(args.get("output_dir") or run_dir / "output").expanduser(),
            max_train_steps=int(args.get("max_train_steps") or 100),
            lora_rank=rank,
            lora_alpha=float(args.get("lora_alpha") or rank),
            resolution=resolution,
            checkpointing_steps=int(args.get("checkpointing_steps") or 0),
            learning_rate=float(args.get("learning_rate") or 1e-3),
            batch_size=int(args.get("train_batch_size") or 4),
            seed=int(args.get("seed") or 42),
            num_samples=_int_or(args.get("num_samples"), 4),
            base_weights=str(base) if base and str(base).endswith(".safetensors") else None,
        )


def _dataset_resolution(datasets: list[dict[str, Any]]) -> int | None:
    for entry in datasets:
        if isinstance(entry.get("resolution"), int | float):
            return int(entry["resolution"])
    return None


def train(run_dir: Path) -> list[str]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    config = RunConfig.from_run_dir(run_dir, device)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    datasets = json.loads((run_dir / "multidatabackend.json").read_text())
    samples = collect_samples(datasets)
    images = load_images(samples, config.resolution).to(device)
    captions = [s.caption for s in samples]
    print(
        f"reference trainer: {len(samples)} images at {config.resolution}px on {device}, "
        f"{config.max_train_steps} steps, LoRA rank {config.lora_rank}",
        flush=True,
    )

    model = build_base_model(config.resolution, weights=config.base_weights)
    wrapped = add_lora(model, config.lora_rank, config.lora_alpha)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"LoRA on {len(wrapped)} layers, {sum(p.numel() for p in params)} trainable params")
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    warmup = max(1, config.max_train_steps // 20)

    def lr_at(step: int) -> float:
        return config.learning_rate * min(1.0, step / warmup)

    reporter = ProgressReporter()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    losses: list[float] = []
    started = time.monotonic()
    report_every = max(1, config.max_train_steps // 100)
    last_report = started
    epoch_size = max(1, math.ceil(len(samples) / config.batch_size))
    for step in range(1, config.max_train_steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        index = torch.randint(0, len(samples), (config.batch_size,), generator=generator)
        batch = images[index.to(device)]
        batch_captions = [captions[i] for i in index.tolist()]
        noise = torch.randn(batch.shape, generator=generator).to(device)
        # Logit-normal times, as in rectified-flow training.
        t = torch.sigmoid(torch.randn(batch.shape[0], generator=generator)).to(device)
        noisy = (1 - t[:, None, None, None]) * batch + t[:, None, None, None] * noise
        prediction = model(noisy, t, batch_captions)
        loss = torch.nn.functional.mse_loss(prediction, noise - batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(loss.item())

        elapsed = time.monotonic() - started
        eta = elapsed / step * (config.max_train_steps - step)
        # Every 1 % of the run, and at least every REPORT_SECONDS on long runs.
        due = time.monotonic() - last_report >= REPORT_SECONDS
        if step % report_every == 0 or step == config.max_train_steps or due:
            last_report = time.monotonic()
            print(
                f"step {step}/{config.max_train_steps} loss {losses[-1]:.4f} "
                f"lr {lr_at(step):.2e} eta {eta:.1f}s",
                flush=True,
            )
            reporter.progress(
                step=step,
                total_steps=config.max_train_steps,
                loss=round(losses[-1], 6),
                lr=lr_at(step),
                epoch=round(step / epoch_size, 3),
                eta_seconds=round(eta, 1),
            )
        if config.checkpointing_steps and step % config.checkpointing_steps == 0:
            _save_checkpoint(model, config.output_dir / f"checkpoint-{step}", step, losses[-1])

    outputs = _save_outputs(model, config, captions, losses, time.monotonic() - started, device)
    reporter.close()
    return outputs


def _save_checkpoint(model: torch.nn.Module, folder: Path, step: int, loss: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(lora_state_dict(model), str(folder / LORA_FILE), metadata={"step": str(step)})
    (folder / "training_state.json").write_text(json.dumps({"global_step": step, "loss": loss}))
    print(f"saved checkpoint {folder.name}", flush=True)


@torch.no_grad()
def _save_outputs(
    model: torch.nn.Module,
    config: RunConfig,
    captions: list[str],
    losses: list[float],
    seconds: float,
    device: torch.device,
) -> list[str]:
    out = config.output_dir
    save_file(
        lora_state_dict(model),
        str(out / LORA_FILE),
        metadata={"format": "pt", "lora_rank": str(config.lora_rank), "model": "reference"},
    )
    model.eval()
    prompts = list(dict.fromkeys(captions))[: config.num_samples]
    samples_dir = out / "samples"
    samples_dir.mkdir(exist_ok=True)
    written = [str(out / LORA_FILE)]
    if prompts:
        images = _sample(model, prompts, config.resolution, config.seed, device)
        for i, image in enumerate(images):
            path = samples_dir / f"sample_{i}.png"
            save_image(image, path)
            written.append(str(path))
    window = max(1, min(10, len(losses) // 5))
    summary = {
        "model_family": "reference",
        "steps": len(losses),
        "final_loss": sum(losses[-window:]) / window,
        "initial_loss": sum(losses[:window]) / window,
        "seconds": round(seconds, 3),
        "lora_rank": config.lora_rank,
        "resolution": config.resolution,
        "device": device.type,
        "samples": prompts,
    }
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2))
    written.append(str(out / "training_summary.json"))
    print(f"training done: final loss {summary['final_loss']:.4f} in {seconds:.1f}s", flush=True)
    return written


def _sample(
    model: torch.nn.Module, prompts: list[str], resolution: int, seed: int, device: torch.device
) -> torch.Tensor:
    """Euler integration of the learned flow from noise (t=1) to an image (t=0)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((len(prompts), 3, resolution, resolution), generator=generator).to(device)
    steps = 20
    for i in range(steps, 0, -1):
        t = torch.full((len(prompts),), i / steps, device=device)
        x = x - model(x, t, prompts) / steps
    return x


def _int_or(value: object, default: int) -> int:
    """An integer argument where 0 is a real value (so `or default` will not do)."""
    if value is None:
        return default
    return int(value) if isinstance(value, int | float) else int(str(value))
