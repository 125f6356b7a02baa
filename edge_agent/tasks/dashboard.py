"""What a job shows on operators' screens beside its results: Home Assistant entities, event types, snapshots,
and the line the demo prints for each result.

Each job's Task names its Dashboard (`Task.dashboard`), so Home Assistant discovery and the demo ask the job
instead of switching on its kind: a new job brings its own and nothing else changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge_agent import messages as m

Entity = tuple[str, str, dict[str, Any]]  # (component, object id, config without the keys every entity shares)


@dataclass(frozen=True)
class Place:
    """Where a pipeline's entities read from: its device's topics, and the pipeline's name."""

    site: str
    device: str
    pipeline: str

    def topic(self, leaf: str) -> str:
        return m.topic(self.site, self.device, leaf)


def pick(pipeline: str, expr: str) -> str:
    """A template reading one pipeline's value from a message that several pipelines share."""
    return (
        f"{{% if value_json.pipeline == '{pipeline}' %}}{{{{ {expr} }}}}{{% else %}}{{{{ this.state }}}}{{% endif %}}"
    )


def from_metrics(pipeline: str, expr: str) -> str:
    """A template reading one pipeline's entry of the metrics message."""
    return "{% for p in value_json.pipelines if p.pipeline == '" + pipeline + "' %}{{ " + expr + " }}{% endfor %}"


class Dashboard:
    """A job that shows nothing beyond what every pipeline has (latency, snapshot and reload buttons)."""

    events: tuple[str, ...] = ()  # the event types it raises (a Home Assistant event entity when any)
    snapshots: bool = False  # whether it publishes JPEG snapshots (a Home Assistant image entity)

    def entities(self, place: Place, config: Any) -> list[Entity]:
        """Home Assistant entities of one pipeline of this job, from its task config."""
        return []

    def summary(self, data: dict[str, Any]) -> str:
        """One line for a result's data, as the demo prints it."""
        return json.dumps(data)[:120]
