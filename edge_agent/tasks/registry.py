"""Explicit, lazily imported table of task plugins keyed by the config's task kind."""

from __future__ import annotations

import importlib
from typing import Any

from edge_agent.runtime.registry import LoadedModel
from edge_agent.tasks.base import Task, TaskContext

TASKS: dict[str, tuple[str, str]] = {
    "classify": ("edge_agent.tasks.classify", "ClassifyTask"),
    "sensor_anomaly": ("edge_agent.tasks.sensor.task", "SensorAnomalyTask"),
    "defect": ("edge_agent.tasks.defect.task", "DefectTask"),
    "shelf": ("edge_agent.tasks.shelf.task", "ShelfTask"),
}


def task_class(kind: str) -> type[Task[Any, Any]]:
    """The Task class of a task kind (its module imported on first use)."""
    module_name, attr = TASKS[kind]
    cls: type[Task[Any, Any]] = getattr(importlib.import_module(module_name), attr)
    return cls


def create_task(config: Any, model: LoadedModel, context: TaskContext) -> Task[Any, Any]:
    return task_class(config.kind)(config, model, context)
