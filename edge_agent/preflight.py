"""What `check` (and `run`, before it starts anything) verifies beyond the config's structure: the outbox file
opens and passes SQLite's integrity check, TLS files exist and parse, the HTTP port is free, and (for `check`)
every model loads and runs once on a synthetic input. Each problem is one ConfigIssue: field, file, fix."""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

from edge_agent.config import AgentConfig, OutboxConfig
from edge_agent.errors import BrokerLinkError, ConfigIssue, EdgeAgentError
from edge_agent.tlsfiles import build_context


def outbox_issues(outbox: OutboxConfig) -> list[ConfigIssue]:
    path = outbox.path
    if not path.exists():
        folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
        if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            message = f"cannot create {path}: {folder} is not a writable folder"
            return [ConfigIssue("outbox.path", message, hint="point outbox.path at a writable volume")]
        return []
    problem = _existing_outbox_problem(path)
    if problem is None:
        return []
    return [ConfigIssue("outbox.path", f"{path}: {problem}", hint="fix the volume, or move the file aside")]


def _existing_outbox_problem(path: Path) -> str | None:
    if not path.is_file():
        return "is not a file"
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        return "is not writable (the file and its folder must be: SQLite writes a -wal file beside it)"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"is not a readable SQLite outbox ({exc})"
    return None if verdict == "ok" else f"fails SQLite's integrity check ({verdict})"


def tls_issues(config: AgentConfig) -> list[ConfigIssue]:
    if config.mqtt is None or config.mqtt.tls is None:
        return []
    try:
        build_context(config.mqtt.tls)
    except BrokerLinkError as exc:
        field, _, message = str(exc).partition(": ")
        return [ConfigIssue(field, message, hint="paths are relative to the config file's folder")]
    return []


def port_issues(config: AgentConfig) -> list[ConfigIssue]:
    h = config.http
    if not h.enabled or h.port == 0:
        return []
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server binds it
        try:
            sock.bind((h.host, h.port))
        except OSError as exc:
            message = f"{h.host}:{h.port} cannot be used ({exc.strerror})"
            hint = "stop what listens there (another edge-agent?) or choose another port"
            return [ConfigIssue("http.port", message, hint=hint)]
    return []


def model_issues(config: AgentConfig) -> list[ConfigIssue]:
    """Load every model as `run` would, run it once on zeros shaped by its manifest, and build its task
    (a task may offer `validate_model()`, which runs its own check of the model)."""
    from edge_agent.runtime.registry import load_model
    from edge_agent.tasks.base import TaskContext
    from edge_agent.tasks.registry import create_task

    issues: list[ConfigIssue] = []
    for index, pc in enumerate(config.pipelines):
        try:
            model = load_model(pc.model.path, pc.model.variant, pc.model.runtime, warmup=False)
            try:
                model.runtime.warmup(model.manifest, runs=1)
                task = create_task(pc.task, model, TaskContext(pc.name, config.device.site, config.device.id))
                validate = getattr(task, "validate_model", None)
                if callable(validate):
                    validate()
            finally:
                model.runtime.close()
        except EdgeAgentError as exc:
            issues.append(ConfigIssue(f"pipelines.{index}.model", str(exc), hint="run `edge-agent models verify`"))
    return issues
