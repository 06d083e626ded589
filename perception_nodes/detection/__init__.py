"""Object detection: dataset export, model registry, evaluation (pure Python; ultralytics only where named)."""
