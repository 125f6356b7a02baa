"""Commands from `edge/v1/{site}/{device}/cmd/{name}`, handled through one table; replies on `cmd/{name}/reply`."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from edge_agent import messages as m
from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.registry import load_model
from edge_agent.tasks.registry import create_task

if TYPE_CHECKING:
    from edge_agent.app import App
    from edge_agent.pipeline import Pipeline

logger = logging.getLogger(__name__)
Handler = Callable[["App", "Pipeline", m.CommandMessage], str]


def _set_threshold(app: App, pipeline: Pipeline, cmd: m.CommandMessage) -> str:
    name = str(cmd.args.get("name", "score"))
    try:
        value = float(cmd.args["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("set_threshold needs args.value, a number (and optionally args.name)") from exc
    pipeline.with_task(lambda task: task.set_threshold(name, value))
    return f"{name} = {value:g}"


def _snapshot(app: App, pipeline: Pipeline, cmd: m.CommandMessage) -> str:
    jpeg = pipeline.with_task(lambda task: task.snapshot())
    if not jpeg:
        raise ValueError(f"pipeline {pipeline.pipeline} has no frame to snapshot")
    assert app.outbox is not None and app.factory is not None
    topic = app.factory.topic(f"{pipeline.task.kind}/snapshot/{uuid.uuid4().hex}")
    app.outbox.put(topic, jpeg)
    return topic


def _reload(app: App, pipeline: Pipeline, cmd: m.CommandMessage) -> str:
    """Reload the pipeline's model from disk; a corrupt or mismatched file is refused and the old one stays."""
    pc = next(p for p in app.config.pipelines if p.name == pipeline.pipeline)
    model = load_model(pc.model.path, pc.model.variant, pc.model.runtime)
    task = create_task(pc.task, model, pipeline.task.context)

    def swap(old: Any) -> None:
        pipeline.task = task
        old.model.runtime.close()

    pipeline.with_task(swap)
    return f"{model.manifest.name} {model.manifest.version} ({model.variant})"


def _model_update(app: App, pipeline: Pipeline, cmd: m.CommandMessage) -> str:
    """Over-the-air update (edge_agent.fleet): returns once the new model runs; probation goes on after."""
    running = pipeline.task.model.manifest.name
    if cmd.pipeline is None and cmd.args.get("name") != running:
        return f"skipped: runs {running}"
    return str(app.fleet.update(pipeline, cmd.args))


def _trigger(app: App, pipeline: Pipeline, cmd: m.CommandMessage) -> str:
    gate = getattr(pipeline.task, "gate", None)
    if gate is None:
        raise ValueError(f"pipeline {pipeline.pipeline} does not take triggers")
    trigger_id = str(cmd.args.get("id") or cmd.request_id or int(time.time() * 1000))
    gate.fire(trigger_id)
    return trigger_id


MAX_RANGES = 1_000


def parse_ranges(args: dict[str, Any]) -> list[tuple[int, int]]:
    """`args.ranges`: a list of [first, last] seq pairs (inclusive), at most MAX_RANGES."""
    raw = args.get("ranges")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_RANGES:
        raise ValueError(f"resend needs args.ranges: 1 to {MAX_RANGES} [first, last] seq pairs")
    out = []
    for item in raw:
        ok = isinstance(item, list) and len(item) == 2 and all(type(v) is int and v >= 0 for v in item)
        if not ok or item[0] > item[1]:
            raise ValueError(f"resend range {item!r} is not [first, last] with 0 <= first <= last")
        out.append((item[0], item[1]))
    return out


def _resend(app: App, cmd: m.CommandMessage) -> tuple[str, dict[str, Any]]:
    """Replay archived messages (marked replayed) and name the seqs the device no longer holds."""
    assert app.outbox is not None
    outcome = app.outbox.resend(parse_ranges(cmd.args))
    held = "; not held: " + ", ".join(f"{a}-{b}" for a, b in outcome.not_held) if outcome.not_held else ""
    return f"{outcome.queued} message(s) queued again{held}", {
        "queued": outcome.queued,
        "not_held": [list(r) for r in outcome.not_held],
    }


DeviceHandler = Callable[["App", m.CommandMessage], tuple[str, dict[str, Any]]]
DEVICE_HANDLERS: dict[str, DeviceHandler] = {"resend": _resend}  # device-wide: no pipeline to pick


def _rebaseline(app: App, pipeline: Pipeline, cmd: m.CommandMessage) -> str:
    """After maintenance: a sensor pipeline relearns its normal levels from the next args.duration (10m)."""
    from edge_agent.tasks.sensor.durations import parse_duration

    duration = parse_duration(cmd.args.get("duration", "10m"))
    def relearn(task: Any) -> str:
        rebaseline = getattr(task, "rebaseline", None)
        if rebaseline is None:
            raise ValueError(f"pipeline {pipeline.pipeline} has no normal levels to relearn (sensor_anomaly only)")
        return str(rebaseline(duration))

    return str(pipeline.with_task(relearn))


HANDLERS: dict[str, Handler] = {
    "set_threshold": _set_threshold,
    "snapshot": _snapshot,
    "reload": _reload,
    "trigger": _trigger,
    "model_update": _model_update,
}


class CommandRouter:
    """Validates a command, runs it on the named pipeline (or all), and publishes a reply."""

    def __init__(self, app: App) -> None:
        self.app = app

    def handle(self, topic: str, payload: bytes) -> None:
        """Called on the broker's network thread: run the command on its own thread (a reload takes time)."""
        threading.Thread(target=self.run, args=(topic, payload), name="command", daemon=True).start()

    def run(self, topic: str, payload: bytes) -> None:
        name = topic.rsplit("/", 1)[-1]
        try:
            cmd = m.CommandMessage.model_validate_json(payload or b"{}")
        except ValidationError as exc:
            self._reply(name, None, False, f"invalid command payload: {exc.errors()[0]['msg']}")
            return
        if name in DEVICE_HANDLERS:
            self._run_device_command(name, cmd)
            return
        handler = HANDLERS.get(name)
        if handler is None:
            known = ", ".join(sorted([*HANDLERS, *DEVICE_HANDLERS]))
            self._reply(name, cmd.request_id, False, f"unknown command; known: {known}")
            return
        targets = [p for p in self.app.pipelines if cmd.pipeline in (None, p.pipeline)]
        if not targets:
            self._reply(name, cmd.request_id, False, f"no pipeline named {cmd.pipeline!r}")
            return
        results = []
        ok = True
        for pipeline in targets:
            try:
                results.append(f"{pipeline.pipeline}: {handler(self.app, pipeline, cmd)}")
            except (EdgeAgentError, ValueError) as exc:
                ok = False
                results.append(f"{pipeline.pipeline}: {exc}")
        if name == "reload" and ok and self.app.link is not None:
            d = self.app.config.device
            self.app.link.publish(m.topic(d.site, d.id, "model"), self.app.model_payload(), retain=True)
        self._reply(name, cmd.request_id, ok, "; ".join(results))

    def _run_device_command(self, name: str, cmd: m.CommandMessage) -> None:
        try:
            detail, extra = DEVICE_HANDLERS[name](self.app, cmd)
        except (EdgeAgentError, ValueError) as exc:
            self._reply(name, cmd.request_id, False, str(exc))
            return
        self._reply(name, cmd.request_id, True, detail, extra)

    def _reply(
        self, name: str, request_id: str | None, ok: bool, detail: str, extra: dict[str, Any] | None = None
    ) -> None:
        (logger.info if ok else logger.warning)("command %s: %s", name, detail[:500])
        link = self.app.link
        if link is None:
            return
        d = self.app.config.device
        args = {"ok": ok, "detail": detail[:2000], **(extra or {})}
        body = m.CommandMessage(request_id=request_id, args=args).model_dump_json()
        link.publish(m.topic(d.site, d.id, f"cmd/{name}/reply"), body.encode(), retain=False)
