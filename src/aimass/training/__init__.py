"""Training: one loop, tasks registered by name, callbacks for everything around it.

Importing this package is light; the loop and the built-in tasks import torch
when first used (``aimass.training.loop``, ``get_task``).
"""

from aimass.training.config import MODES, TrainConfig
from aimass.training.tasks import (
    Task,
    TrainInputs,
    TrainOutcome,
    get_task,
    list_tasks,
    register_task,
)

__all__ = [
    "MODES",
    "Task",
    "TrainConfig",
    "TrainInputs",
    "TrainOutcome",
    "get_task",
    "list_tasks",
    "register_task",
]
