"""The reference trainer on a small generated dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cloudtune.trainer.launch import run
from tests.factories import job_body, make_dataset

pytestmark = pytest.mark.trainer


def test_loss_goes_down_and_outputs_are_written(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", 16, size=64, seed=3)
    body = job_body(dataset, tmp_path / "out", steps=120, checkpointing_steps=60)
    body["config"]["--resolution"] = 32
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(body["config"]))
    (run_dir / "multidatabackend.json").write_text(json.dumps(body["dataloader_config"]))

    assert run(run_dir) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed"

    out = tmp_path / "out"
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["steps"] == 120
    assert summary["final_loss"] < 0.75 * summary["initial_loss"], summary
    weights = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert weights and all(".lora_A." in k or ".lora_B." in k for k in weights)
    assert any(v.abs().sum() > 0 for k, v in weights.items() if ".lora_B." in k)
    assert (out / "checkpoint-60" / "pytorch_lora_weights.safetensors").is_file()
    assert (out / "checkpoint-120" / "pytorch_lora_weights.safetensors").is_file()
    samples = sorted((out / "samples").glob("*.png"))
    assert len(samples) == 4 and all(p.read_bytes()[:4] == b"\x89PNG" for p in samples)


def test_filename_captions_and_a_broken_dataset(tmp_path: Path) -> None:
    from cloudtune.trainer.reference.data import collect_samples

    folder = tmp_path / "imgs"
    make_dataset(folder, 2)
    for text in folder.glob("*.txt"):
        text.unlink()
    (folder / "img0.png").rename(folder / "a_red_square_01.png")
    samples = collect_samples(
        [{"type": "local", "instance_data_dir": str(folder), "caption_strategy": "filename"}]
    )
    assert samples[0].caption == "a red square"

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"--model_family": "reference"}))
    (run_dir / "multidatabackend.json").write_text(
        json.dumps([{"type": "local", "instance_data_dir": str(tmp_path / "none")}])
    )
    assert run(run_dir) == 1
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "failed" and "no images" in result["error"]
