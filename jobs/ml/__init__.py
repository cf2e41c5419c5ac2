"""Models: metrics, the MLflow registry, gates, pinned training sets, training, evaluation and promotion."""
