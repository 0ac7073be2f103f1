"""A tiny text-conditioned image model (a small diffusion transformer on 4x4 patches) and the
LoRA adapters trained on top of it.

The base weights come from a fixed seed, so "the base model" is the same on every machine without
downloading anything; a run may instead name a local `.safetensors` file of base weights with
`pretrained_model_name_or_path`.
"""

from __future__ import annotations

import math
import re
import zlib

import torch
from torch import nn

VOCAB_SIZE = 4096


def tokenize(caption: str, max_tokens: int = 32) -> list[int]:
    """Words to ids by a stable hash: no vocabulary file to download."""
    words = re.findall(r"[a-z0-9]+", caption.lower())[:max_tokens]
    return [1 + zlib.crc32(word.encode()) % (VOCAB_SIZE - 1) for word in words] or [0]


class TextEncoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(VOCAB_SIZE, dim, mode="mean")

    def forward(self, captions: list[str]) -> torch.Tensor:
        ids = [torch.tensor(tokenize(c)) for c in captions]
        offsets = torch.tensor([0] + [len(t) for t in ids[:-1]]).cumsum(0)
        device = self.embedding.weight.device
        return self.embedding(torch.cat(ids).to(device), offsets.to(device))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.fc1 = nn.Linear(dim, dim * 4)
        self.fc2 = nn.Linear(dim * 4, dim)
        self.modulation = nn.Linear(dim, dim * 4)
        self.heads = heads

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift1, scale1, shift2, scale2 = self.modulation(cond).unsqueeze(1).chunk(4, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        b, n, d = h.shape
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(h)))


class TinyDiT(nn.Module):
    """Predicts the flow-matching velocity (noise - image) from a noisy image, time and caption."""

    def __init__(self, resolution: int, patch: int = 4, dim: int = 128, depth: int = 4) -> None:
        super().__init__()
        self.resolution = resolution
        self.patch = patch
        tokens = (resolution // patch) ** 2
        self.patch_in = nn.Linear(3 * patch * patch, dim)
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.text = TextEncoder(dim)
        self.time = nn.Sequential(nn.Linear(64, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(Block(dim, heads=4) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.patch_out = nn.Linear(dim, 3 * patch * patch)

    def forward(self, x: torch.Tensor, t: torch.Tensor, captions: list[str]) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch
        tokens = (
            x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)
        )
        hidden = self.patch_in(tokens) + self.position
        cond = self.time(_timestep_features(t)) + self.text(captions)
        for block in self.blocks:
            hidden = block(hidden, cond)
        out = self.patch_out(self.norm(hidden))
        grid = h // p
        out = out.view(b, grid, grid, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(b, c, h, w)


def _timestep_features(t: torch.Tensor) -> torch.Tensor:
    freqs = torch.exp(-math.log(1000.0) * torch.arange(32, device=t.device) / 32)
    angles = t[:, None] * 1000.0 * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class LoRALinear(nn.Module):
    """y = W x + (alpha / rank) * B A x, with W frozen and B starting at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


LORA_TARGETS = ("qkv", "proj", "fc1", "fc2", "modulation", "patch_out")


def add_lora(model: nn.Module, rank: int, alpha: float) -> list[str]:
    """Freeze the model and wrap the target linear layers; returns the wrapped module names."""
    model.requires_grad_(False)
    wrapped: list[str] = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child_name in LORA_TARGETS:
                setattr(module, child_name, LoRALinear(child, rank, alpha))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    return wrapped


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: tensor.detach().cpu().contiguous()
        for name, tensor in model.state_dict().items()
        if ".lora_A." in name or ".lora_B." in name
    }


def build_base_model(resolution: int, seed: int = 0, weights: str | None = None) -> TinyDiT:
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = TinyDiT(resolution)
    torch.random.set_rng_state(generator_state)
    if weights:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(weights))
    return model
