"""Model configuration: one YAML file per model under include/models/, validated on load with clear errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.settings import load


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where the model's events come from."""

    table: str = "transactions"
    first_date: date


class FeatureConfig(_Strict):
    """Point-in-time customer features: window lengths and trend ratios."""

    windows_days: tuple[int, ...] = Field(min_length=1)
    trend_pairs: tuple[tuple[int, int], ...] = ()

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(w <= 0 for w in value) or len(set(value)) != len(value):
            raise ValueError("windows_days must be distinct positive day counts")
        return tuple(sorted(value))

    @model_validator(mode="after")
    def _pairs(self) -> FeatureConfig:
        for short, long in self.trend_pairs:
            if short not in self.windows_days or long not in self.windows_days or short >= long:
                raise ValueError(f"trend pair {[short, long]} must name two windows_days, short < long")
        return self


class LabelConfig(_Strict):
    """Label definition."""

    horizon_days: int = Field(gt=0, le=730)


class XGBoostConfig(_Strict):
    """Gradient-boosted trees (hist; on CUDA when a GPU is present)."""

    n_estimators: int = Field(400, gt=0)
    max_depth: int = Field(6, gt=0, le=16)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    early_stopping_rounds: int = Field(30, gt=0)


class PyTorchConfig(_Strict):
    """A tabular MLP on normalised features (CUDA and AMP when present)."""

    hidden: tuple[int, ...] = Field((128, 64), min_length=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    batch_size: int = Field(2048, gt=0)
    max_epochs: int = Field(30, gt=0)
    patience: int = Field(4, gt=0)


class TrainingConfig(_Strict):
    """How training sets are cut and which model families compete."""

    families: tuple[Literal["xgboost", "pytorch"], ...] = Field(("xgboost", "pytorch"), min_length=1)
    primary_metric: Literal["roc_auc", "pr_auc", "log_loss", "brier"] = "roc_auc"
    sample_every_days: int = Field(7, gt=0, le=90)  # consecutive as-of days are near-duplicates of each other
    validation_days: int = Field(56, gt=0)
    holdout_days: int = Field(56, gt=0)
    gap_days: int | None = Field(None, ge=0)  # between splits; default (and minimum) the label horizon
    seed: int = 42
    xgboost: XGBoostConfig = XGBoostConfig()
    pytorch: PyTorchConfig = PyTorchConfig()


class PromotionConfig(_Strict):
    """When a challenger may replace the champion (see jobs/ml/gates.py's should_promote)."""

    mode: Literal["enabled", "dry_run", "disabled"] = "enabled"
    min_primary: float = Field(
        0.65, ge=0, le=1
    )  # absolute floor on the primary metric (the only bar without a champion)
    min_lift: float = Field(0.002, ge=0)  # absolute improvement over the champion on the primary metric
    min_relative_lift: float = Field(0.0, ge=0)  # relative improvement, e.g. 0.01 = 1%
    max_slice_drop: float = Field(0.02, ge=0)  # no slice may be worse than the champion's by more than this
    max_calibration_error: float = Field(0.05, gt=0, le=1)
    min_score_std: float = Field(0.01, ge=0)  # a near-constant score is a broken model, whatever its AUC
    max_mean_score_gap: float = Field(0.10, ge=0, le=1)  # |mean score - positive rate| on the evaluation set
    # Slices the max_slice_drop gate compares: feature column -> ascending cut points (k cuts give k + 1 slices).
    slices: dict[str, tuple[float, ...]] = Field(
        default_factory=lambda: {"tenure_days": (90.0, 365.0), "amount_sum_all": (50.0, 200.0)}
    )
    min_slice_rows: int = Field(200, gt=0)  # a slice with fewer rows (or one class only) is reported, not gated
    force_reason_min_chars: int = Field(10, ge=1)  # a forced promotion or a rollback must say why, in words

    @field_validator("slices")
    @classmethod
    def _cuts(cls, value: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        for column, cuts in value.items():
            if not cuts or list(cuts) != sorted(set(cuts)):
                raise ValueError(f"slices.{column}: cut points must be a non-empty ascending list without repeats")
        return value


class DriftConfig(_Strict):
    """Drift monitoring and its alert policy (see jobs/monitoring/alerts.py's should_alert)."""

    window_days: int = Field(1, gt=0, le=90)  # current window: the as-of dates (D - window_days, D]
    report_sample_rows: int = Field(50_000, gt=0)  # rows per side in the HTML report (decisions use every row)
    max_drifted_share: float = Field(0.3, gt=0, le=1)  # a window drifts when this share of features drifts
    weight_by_importance: bool = False  # the share weighted by the champion's feature importance
    persistence_k: int = Field(3, gt=0)  # an episode: k drifted windows among the last n, the latest included
    persistence_n: int = Field(5, gt=0)
    cooldown_days: int = Field(30, ge=0)  # no second mail (nor drift retrain) for the model within this
    max_performance_drop: float = Field(0.05, ge=0)  # primary metric at promotion minus on matured labels
    retrain_on_drift: bool = True
    retrain_on_performance_drop: bool = True

    @model_validator(mode="after")
    def _persistence(self) -> DriftConfig:
        if self.persistence_k > self.persistence_n:
            raise ValueError(f"persistence_k ({self.persistence_k}) must be <= persistence_n ({self.persistence_n})")
        return self


class AlertConfig(_Strict):
    """Who hears about this model (data-quality failures, promotions, drift); empty: MLP_ALERT_RECIPIENTS."""

    recipients: tuple[str, ...] = ()

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if "@" not in v or " " in v.strip()]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return tuple(v.strip() for v in value)


class ModelConfig(_Strict):
    """Everything that defines one model; new sections arrive with the stages that use them."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    description: str = ""
    source: SourceConfig
    features: FeatureConfig
    label: LabelConfig
    alerts: AlertConfig = AlertConfig()
    training: TrainingConfig = TrainingConfig()
    promotion: PromotionConfig = PromotionConfig()
    drift: DriftConfig = DriftConfig()

    @model_validator(mode="after")
    def _slice_columns(self) -> ModelConfig:
        unknown = sorted(set(self.promotion.slices) - set(feature_columns(self)))
        if unknown:
            raise ValueError(f"promotion.slices name columns that are not features: {unknown}")
        return self

    @model_validator(mode="after")
    def _gap(self) -> ModelConfig:
        gap = self.training.gap_days
        if gap is not None and gap < self.label.horizon_days:
            raise ValueError(
                f"training.gap_days ({gap}) must be >= label.horizon_days ({self.label.horizon_days}): "
                "a shorter gap lets training labels see the validation period"
            )
        return self

    @property
    def split_gap_days(self) -> int:
        """Days between train, validation and holdout as-of dates."""
        return self.training.gap_days if self.training.gap_days is not None else self.label.horizon_days


# The features every model file's windows expand to (declared per model; computed by jobs.features.build).
WINDOW_METRICS = ("txn_count", "amount_sum", "quantity_sum", "active_days")
BASKET_FEATURES = ("avg_basket_amount", "max_basket_amount", "std_basket_amount", "avg_basket_quantity")


def window_suffixes(config: ModelConfig) -> list[str]:
    """The column suffix of each feature window (``30d``, ...) and of the whole history (``all``)."""
    return [f"{w}d" for w in config.features.windows_days] + ["all"]


def feature_columns(config: ModelConfig) -> tuple[str, ...]:
    """The model-facing feature columns for ``config``, in their fixed order (keys and lineage excluded)."""
    columns = ["recency_days", "tenure_days"]
    columns += [f"{metric}_{suffix}" for suffix in window_suffixes(config) for metric in WINDOW_METRICS]
    columns += ["mean_gap_days", "last_gap_days", *BASKET_FEATURES]
    columns += [f"trend_{short}_{long}" for short, long in config.features.trend_pairs]
    return tuple(columns)


def source_first_date(table: str = "transactions") -> date:
    """The earliest ``source.first_date`` of the model files reading ``table``: what the shared silver table accepts
    (clean quarantines older orders; the silver suite checks the same bound), so a model with a later first date
    never fails the gate on rows another model needs."""
    dates = []
    for path in sorted(load().models_dir.glob("*.yaml")):
        config = load_model_config(path)
        if config.source.table == table:
            dates.append(config.source.first_date)
    if not dates:
        raise ConfigError(f"no model file in {load().models_dir} reads the source table {table!r}")
    return min(dates)


class ConfigError(ValueError):
    """A model config file that cannot be used, with the file and the offending fields named."""


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """Load ``include/models/<name>.yaml`` (or a path) and validate it."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = load().models_dir / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError(f"model config not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        config = ModelConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc
    if config.name != path.stem:
        raise ConfigError(f"{path}: name {config.name!r} must equal the file name {path.stem!r}")
    return config
