"""Score a trained token-level model (language model, NER) the way its training task does.

The evaluation package sees models as plain callables; this module builds the
ones that language-model and NER reports need from a loaded predictor and the
model's registered training task (restored from the bundle's ``task_config``
with :meth:`~aimass.training.examples.ExampleTask.for_bundle`). Held-out loss
is therefore computed by the task's own ``encode``/``collate``/``loss_rows`` —
the same prompt masking, BERT masking (seeded) and label shift as training —
and NER tags are read off the first sub-word of each word, as training's
entity F1 reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aimass.data.tables import SplitData
from aimass.errors import InvalidArgument, UnsupportedModel

__all__ = ["TaskScorer"]


class TaskScorer:
    """Per-row held-out loss (LMs) and predicted tags (NER) of a loaded predictor's model.

    Args:
        predictor: A loaded predictor with ``model`` and ``tokenizer`` attributes.
        seed: Seeds what the task draws while scoring (masked-LM masks).
    """

    def __init__(self, predictor: Any, *, seed: int) -> None:
        from aimass.training.examples import ExampleTask
        from aimass.training.tasks import get_task

        config = predictor.manifest.task_config
        self.model = predictor.model
        self.tokenizer = predictor.tokenizer
        self.device = predictor.device
        self.seed = seed
        self.max_length = int(config.get("max_length", 128))
        task = get_task(predictor.task)
        if not isinstance(task, ExampleTask):
            raise UnsupportedModel(
                f"{predictor.task!r} models have no token-level score; "
                "language-model and NER models do"
            )
        self.task = task.for_bundle(config, self.tokenizer, self.model)

    def nll(
        self, texts: Sequence[str], targets: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Summed token NLL (nats) and scored-token count of every row.

        Rows the task cannot score (a prompt that fills the whole context) get 0 tokens.
        """
        examples: list[dict[str, list[int]]] = []
        owners: list[int] = []
        for i, text in enumerate(texts):
            row = SplitData(
                texts=[text],
                labels=None,
                extras={},
                targets=None if targets is None else [targets[i]],
            )
            encoded = self.task.encode(row, self.tokenizer, self.max_length)
            examples.extend(encoded)
            owners.extend([i] * len(encoded))
        if not examples:
            return np.zeros(len(texts)), np.zeros(len(texts), dtype=np.int64)
        sums, counts = self.task.score(
            self.model, examples, self.tokenizer, seed=self.seed, device=self.device
        )
        n = len(texts)
        return (
            np.bincount(owners, weights=sums, minlength=n),
            np.bincount(owners, weights=counts, minlength=n).astype(np.int64),
        )

    def tags(self, tokens: Sequence[Sequence[str]]) -> list[list[str]]:
        """Predicted BIO tag of every word of every row (long rows read in windows)."""
        if not tokens:
            return []
        if any(not row for row in tokens):
            raise InvalidArgument("every row to tag needs at least one token")
        rows = [list(row) for row in tokens]
        split = SplitData(
            texts=[" ".join(row) for row in rows],
            labels=None,
            extras={},
            tokens=rows,
            tags=[["O"] * len(row) for row in rows],  # placeholders: only predictions are read
        )
        from aimass.training.token_classification import EntityScores

        tracker = self.task.tracker(self.tokenizer)
        if not isinstance(tracker, EntityScores):
            raise UnsupportedModel(f"{self.task.name!r} models do not tag words; NER models do")
        examples = self.task.encode(split, self.tokenizer, self.max_length)
        self.task.score(
            self.model,
            examples,
            self.tokenizer,
            seed=self.seed,
            device=self.device,
            tracker=tracker,
        )
        return tracker.tags()
