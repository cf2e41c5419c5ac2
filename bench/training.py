"""Benchmark training throughput per model family: rows x passes per second, on CPU and on a GPU when present.

Synthetic tabular data with the reference model's feature count and a known signal; each family runs the same
trainer code as ``jobs.ml.train`` (fixed rounds/epochs, no early stopping, so the numbers compare). Prints JSON and
appends it to docs/benchmarks/history.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
from typing import Any

from bench import report
from jobs.config import feature_columns, load_model_config
from jobs.ml import train

log = logging.getLogger("bench.training")


def synthetic_rows(rows: int, columns: list[str], seed: int) -> Any:
    """Gamma-distributed feature columns and a label two of them predict (a known, learnable signal)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 2.0, size=(rows, len(columns))).astype(np.float32)
    logit = 0.6 * np.log1p(x[:, 2]) - 0.3 * np.log1p(x[:, 0]) + 0.2 * rng.standard_normal(rows) - 0.5
    frame = pd.DataFrame(x, columns=columns)
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    return frame


def run(rows: int, devices: list[str]) -> dict[str, Any]:
    """Train each family once per device on ``rows`` rows; report rows x passes per second."""
    config = load_model_config("purchase_propensity")
    config = config.model_copy(
        update={
            "training": config.training.model_copy(
                update={
                    "xgboost": config.training.xgboost.model_copy(
                        update={"n_estimators": 100, "early_stopping_rounds": 1000}
                    ),
                    "pytorch": config.training.pytorch.model_copy(update={"max_epochs": 3, "patience": 1000}),
                }
            )
        }
    )
    columns = list(feature_columns(config))
    train_set, valid_set = synthetic_rows(rows, columns, 1), synthetic_rows(max(rows // 10, 1000), columns, 2)
    out: dict[str, Any] = {"rows": rows, "features": len(columns), "cores": os.cpu_count(), "machine": platform.node()}
    for on in devices:
        for family, trainer in train.TRAINERS.items():
            train.seed_everything(config.training.seed)
            _, info = trainer(train_set, valid_set, columns, config, on)
            out[f"{family}_{on}"] = {
                "rows_per_second": round(info["rows_per_second"]),
                "seconds": round(info["seconds"], 1),
                "passes": info["epochs_or_rounds"],
            }
            log.info("%s on %s: %s", family, on, out[f"{family}_{on}"])
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m bench.training [--rows N]``; adds the GPU whenever PyTorch sees one."""
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks/history.jsonl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    devices = ["cpu"] + (["cuda"] if train.device() == "cuda" else [])
    result = run(args.rows, devices)
    if "cuda" not in devices:
        result["gpu"] = "none visible: CPU only"
    print(json.dumps(result, indent=2))
    if not args.no_record:
        runs = {key: value for key, value in result.items() if isinstance(value, dict)}
        report.record(
            "training",
            {"rows": args.rows, "devices": devices},
            result,
            stages={key: {"seconds": value["seconds"]} for key, value in runs.items()},
            ratios={f"{key} rows*passes/s": value["rows_per_second"] for key, value in runs.items()},
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
