"""The console's training form, read into a training job's ``config`` and ``privacy``.

Each field is a :class:`~aimass.training.config.TrainConfig` option, a task
option (``option.NAME``: a tick box for a flag, a number field), or one of the
two JSON boxes (the CLI's ``--config`` and ``--dp``); a field filled in wins
over the same key in the JSON. A value that is not what its field takes is
refused by the field's name before any job is queued.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument

if TYPE_CHECKING:
    from aimass.training.tasks import TaskOption

__all__ = ["parse", "task_options"]


def parse(fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The job's ``config`` and ``privacy`` (``None`` without DP) from the posted form."""
    config = _numbers(fields, _CONFIG_NUMBERS)
    for key in _CONFIG_TEXTS:
        if fields.get(key, "").strip():
            config[key] = fields[key].strip()
    for key, kind in _CONFIG_LISTS:
        if items := _items(fields, key, kind):
            config[key] = items
    config = {**_json_object(fields.get("config"), "config"), **config}
    if chosen := _form_task_options(fields):
        given = config.get("options") or {}
        # Options in the JSON that are not an object are kept for the job to refuse.
        config["options"] = {**given, **chosen} if isinstance(given, dict) else given
    epsilon = _numbers(fields, (("target_epsilon", float),))
    privacy = {**_json_object(fields.get("privacy"), "privacy"), **epsilon} or None
    return config, privacy


def task_options() -> list[tuple[TaskOption, str]]:
    """Every task option once, with the names of the tasks that take it."""
    from aimass.training.tasks import list_tasks

    takers: dict[str, list[str]] = {}
    described: dict[str, TaskOption] = {}
    for task in list_tasks():
        for option in task.options:
            described.setdefault(option.name, option)
            takers.setdefault(option.name, []).append(task.name)
    return [(described[name], ", ".join(takers[name])) for name in sorted(described)]


def _form_task_options(fields: dict[str, str]) -> dict[str, Any]:
    """The task options the form set: a ticked flag is true, a filled number converted
    (a number that is not one is refused by the option's name)."""
    out: dict[str, Any] = {}
    for option, _ in task_options():
        text = fields.get(f"option.{option.name}", "").strip()
        if not text:
            continue
        if option.kind == "flag":
            out[option.name] = True
            continue
        try:
            out[option.name] = float(text)
        except ValueError:
            raise InvalidArgument(
                f"task option {option.name} {text!r} is not a number", field=option.name
            ) from None
    return out


# The training form's number fields, as TrainConfig names them.
_CONFIG_NUMBERS: tuple[tuple[str, type], ...] = (
    ("epochs", int),
    ("lr", float),
    ("batch_size", int),
    ("lora_rank", int),
    ("max_length", int),
    ("eval_steps", int),
    ("patience", int),
    ("temperature", float),
    ("distill_alpha", float),
    ("match_hidden", float),
    ("sequence_beams", int),
    ("seed", int),
    ("max_train_rows", int),
    ("weight_decay", float),
    ("warmup_ratio", float),
    ("grad_accum", int),
    ("grad_clip", float),
    ("dropout", float),
    ("feature_layers", int),
    ("probe_epochs", int),
    ("probe_lr", float),
    ("layer_lr_decay", float),
    ("label_smoothing", float),
    ("adversarial_epsilon", float),
    ("lora_alpha", float),
    ("lora_dropout", float),
    ("workers", int),
)
# Its text fields, and its comma-separated lists with the type of their items.
_CONFIG_TEXTS = ("task", "mode", "teacher", "unlabelled", "pooling", "trainable")
_CONFIG_LISTS: tuple[tuple[str, type], ...] = (("layers", int), ("lora_targets", str))


def _numbers(fields: dict[str, str], names: tuple[tuple[str, type], ...]) -> dict[str, Any]:
    """The number fields that were filled in, converted; a field that is not a number
    is refused by name."""
    out: dict[str, Any] = {}
    for key, kind in names:
        text = fields.get(key, "").strip()
        if text:
            try:
                out[key] = kind(text)
            except ValueError:
                raise InvalidArgument(f"{key} {text!r} is not a number", field=key) from None
    return out


def _items(fields: dict[str, str], key: str, kind: type) -> list[Any]:
    """A comma-separated list field, each item converted; an item that is not of the
    kind is refused by the field's name."""
    items = [item.strip() for item in fields.get(key, "").split(",") if item.strip()]
    try:
        return [kind(item) for item in items]
    except ValueError:
        raise InvalidArgument(
            f"{key} {fields[key]!r} is not a comma-separated list of {kind.__name__}s",
            field=key,
        ) from None


def _json_object(text: str | None, field: str) -> dict[str, Any]:
    """A form field holding a JSON object (the training form's advanced options)."""
    if not text or not text.strip():
        return {}
    try:
        found = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{field} is not valid JSON: {exc}", field=field) from None
    if not isinstance(found, dict):
        raise InvalidArgument(f"{field} must be a JSON object", field=field)
    return found
