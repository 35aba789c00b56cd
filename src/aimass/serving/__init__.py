"""Serving without HTTP: predictors loaded from verified bundles, and their cache."""

from aimass.models.device import resolve_device
from aimass.serving.batching import BatcherPool, BatchPolicy, BatchRecord, MicroBatcher
from aimass.serving.cache import PredictorCache
from aimass.serving.predictor import Predictor, load_predictor, register_predictor

__all__ = [
    "BatchPolicy",
    "BatchRecord",
    "BatcherPool",
    "MicroBatcher",
    "Predictor",
    "PredictorCache",
    "load_predictor",
    "register_predictor",
    "resolve_device",
]
