"""The training image (no Docker engine here: the Dockerfile is parsed and checked as text)."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _stage(name: str) -> list[str]:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    start = next(i for i, x in enumerate(lines) if re.match(rf"FROM \S+ AS {name}$", x))
    end = next((i for i, x in enumerate(lines[start + 1 :], start + 1) if x.startswith("FROM ")), len(lines))
    return lines[start:end]


def test_training_image_is_cuda_based_and_runs_the_training_entry_point() -> None:
    stage = _stage("training")
    assert stage[0].startswith("FROM nvidia/cuda:") and "cudnn" in stage[0]
    entry = json.loads(next(x for x in stage if x.startswith("ENTRYPOINT")).removeprefix("ENTRYPOINT "))
    from mlplatform.tasks import training_command

    assert entry == training_command("m", "all", "r", ("", ""), ("1", "1"))[:3]
    text = "\n".join(stage)
    assert "-r requirements.lock" in text, "the image installs the same pinned lock as make setup"
    assert re.search(r"^USER \d+", text, re.M), "the training container does not run as root"
    assert "PASSWORD" not in text.upper() and "SECRET" not in text.upper()
