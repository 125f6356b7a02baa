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
    task.metrics = app.metrics  # type: ignore[attr-defined]

    def swap(old: Any) -> None:
        pipeline.task = task
        old.model.runtime.close()

    pipeline.with_task(swap)
    return f"{model.manifest.name} {model.manifest.version} ({model.variant})"


def _trigger(app: App, pipeline: Pipeline, cmd: m.CommandMessage) -> str:
    gate = getattr(pipeline.task, "gate", None)
    if gate is None:
        raise ValueError(f"pipeline {pipeline.pipeline} does not take triggers")
    trigger_id = str(cmd.args.get("id") or cmd.request_id or int(time.time() * 1000))
    gate.fire(trigger_id)
    return trigger_id


HANDLERS: dict[str, Handler] = {
    "set_threshold": _set_threshold,
    "snapshot": _snapshot,
    "reload": _reload,
    "trigger": _trigger,
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
        handler = HANDLERS.get(name)
        if handler is None:
            self._reply(name, cmd.request_id, False, f"unknown command; known: {', '.join(sorted(HANDLERS))}")
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

    def _reply(self, name: str, request_id: str | None, ok: bool, detail: str) -> None:
        (logger.info if ok else logger.warning)("command %s: %s", name, detail)
        link = self.app.link
        if link is None:
            return
        d = self.app.config.device
        body = m.CommandMessage(request_id=request_id, args={"ok": ok, "detail": detail}).model_dump_json()
        link.publish(m.topic(d.site, d.id, f"cmd/{name}/reply"), body.encode(), retain=False)
