"""The device's retained status: each pipeline's state, republished whenever one changes.

The states are the ones `/healthz` reasons map to, so an operator reading `mosquitto_sub`, Home
Assistant or the dashboard sees what a container health check sees:

- starting: the thread has not started yet, or no result has come since it did (within the stale window)
- running: results keep coming (or a triggered line waits for its next trigger)
- degraded: `/healthz` says unhealthy; the detail is its reason
- stopped: a replay that ended on its own
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edge_agent import messages as m

if TYPE_CHECKING:
    from edge_agent.pipeline import Pipeline

logger = logging.getLogger(__name__)
_NUMBERS = re.compile(r"\d+(\.\d+)?")


def pipeline_status(p: Pipeline, stale_s: float) -> m.PipelineStatus:
    """One pipeline's state from the same check `/healthz` runs."""
    if p.ident is None:
        return m.PipelineStatus(name=p.pipeline, task=p.task.kind, state="starting", detail="not started")
    ok, reason = p.health(stale_s)
    if reason == "finished":
        state = "stopped"
    elif not ok:
        state = "degraded"
    elif p.last_result_at is None and reason == "ok":
        state, reason = "starting", "waiting for the first result"
    else:
        state = "running"
    return m.PipelineStatus(name=p.pipeline, task=p.task.kind, state=state, detail=reason)


def signature(statuses: Sequence[m.PipelineStatus]) -> tuple[tuple[str, str, str], ...]:
    """What counts as a change: a state or a reason, not a reason's ticking seconds ("no result for 31s")."""
    return tuple((s.name, s.state, _NUMBERS.sub("#", s.detail)) for s in statuses)


class StatusWatcher(threading.Thread):
    """Polls the pipelines' states and calls `publish` with the new list whenever it changes."""

    def __init__(
        self,
        statuses: Callable[[], list[m.PipelineStatus]],
        publish: Callable[[list[m.PipelineStatus]], None],
        interval_s: float = 0.25,
    ) -> None:
        super().__init__(name="status", daemon=True)
        self._statuses = statuses
        self._publish = publish
        self._interval_s = interval_s
        self._stop_event = threading.Event()
        self.last: tuple[tuple[str, str, str], ...] = ()

    def check(self) -> bool:
        """Publish if anything changed since the last call; True when it did."""
        current = self._statuses()
        key = signature(current)
        if key == self.last:
            return False
        self.last = key
        logger.info("status: %s", ", ".join(f"{s.name} {s.state}" for s in current))
        self._publish(current)
        return True

    def run(self) -> None:
        while not self._stop_event.wait(self._interval_s):
            self.check()

    def stop(self) -> None:
        self._stop_event.set()
