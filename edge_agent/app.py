"""Composition root: builds outbox, pipelines, broker link and HTTP server from the config, in boot order."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry

from edge_agent import __version__
from edge_agent import messages as m
from edge_agent.backoff import Backoff
from edge_agent.commands import CommandRouter
from edge_agent.config import AgentConfig, PipelineConfig
from edge_agent.fleet.updater import ModelUpdater
from edge_agent.forwarder import Forwarder, delivery_checks
from edge_agent.homeassistant import discovery_messages
from edge_agent.httpserver import HealthServer, read_token
from edge_agent.metrics import AgentMetrics
from edge_agent.mqtt import MqttLink
from edge_agent.outbox import Outbox
from edge_agent.pipeline import MessageFactory, Pipeline
from edge_agent.runtime.registry import LoadedModel, load_model
from edge_agent.sinks import JsonlSink, LogSink, MqttSink, Sink
from edge_agent.sources.base import create_source
from edge_agent.sources.runner import Handover, SourceRunner
from edge_agent.sources.windowing import WindowSpec
from edge_agent.status import StatusWatcher, pipeline_status
from edge_agent.tasks.base import TaskContext
from edge_agent.tasks.registry import create_task

logger = logging.getLogger(__name__)
SENSOR_SOURCES = ("csv", "mqtt_sensor", "modbus")


class App:
    """The daemon. `start()` reads like its boot sequence; `stop()` finishes within a few seconds."""

    def __init__(self, config: AgentConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.metrics = AgentMetrics(registry)
        self.started_at = datetime.now(timezone.utc)
        self.outbox: Outbox | None = None
        self.link: MqttLink | None = None
        self.forwarder: Forwarder | None = None
        self.http: HealthServer | None = None
        self.pipelines: list[Pipeline] = []
        self.factory: MessageFactory | None = None
        self.commands = CommandRouter(self)
        self.fleet = ModelUpdater(self)
        self._stop = threading.Event()
        self._metrics_thread: threading.Thread | None = None
        self.status_watcher = StatusWatcher(self.pipeline_statuses, self._publish_status)

    # ------------------------------------------------------------ boot sequence

    def start(self) -> None:
        self.init_outbox()
        self.init_pipelines()
        self.start_http()
        self.start_pipelines()
        self.init_mqtt()  # after the pipelines: the first retained status already says what they do
        self.start_status_watcher()
        self.start_metrics_publisher()

    def init_outbox(self) -> None:
        self.outbox = Outbox(self.config.outbox, self.metrics)
        d = self.config.device
        self.factory = MessageFactory(d.site, d.id, self.outbox.next_seq, self.outbox.current_seq)
        self.metrics.agent_info.info({"version": __version__, "site": d.site, "device": d.id})

    def init_pipelines(self) -> None:
        for pc in self.config.pipelines:
            self.pipelines.append(self._build_pipeline(pc))

    def _build_pipeline(self, pc: PipelineConfig) -> Pipeline:
        assert self.factory is not None
        model = load_model(self.fleet.boot_model_dir(pc), pc.model.variant, pc.model.runtime)
        self._record_model(pc.name, model)
        d = self.config.device
        task = create_task(pc.task, model, TaskContext(pc.name, d.site, d.id, self.metrics))
        source = create_source(pc.name, pc.source, window_spec(pc, model), self.metrics)
        handover = Handover(pc.queue_size, source.keep_latest)
        backoff = Backoff(pc.source.backoff.initial_s, pc.source.backoff.max_s)
        runner = SourceRunner(source, handover, self.metrics, backoff)
        return Pipeline(pc.name, task, runner, self._sinks(pc), self.metrics, self.factory)

    def _record_model(self, pipeline: str, model: LoadedModel) -> None:
        mf = model.manifest
        for family in self.metrics.model_info.collect():  # a swapped-out model is no longer active
            for sample in family.samples:
                if sample.labels["pipeline"] == pipeline:
                    self.metrics.model_info.remove(*sample.labels.values())
        self.metrics.model_info.labels(
            pipeline,
            mf.name,
            mf.version,
            model.variant,
            model.entry.sha256[:12],
            model.runtime.description.split(" ")[0],
        ).set(1)

    def _sinks(self, pc: PipelineConfig) -> list[Sink]:
        sinks: list[Sink] = []
        for name in pc.sinks:
            if name == "mqtt" and self.outbox is not None:
                sinks.append(MqttSink(self.outbox))
            elif name == "log":
                sinks.append(LogSink())
            elif name == "jsonl" and pc.jsonl_path is not None:
                sinks.append(JsonlSink(pc.jsonl_path))
        return sinks

    def init_mqtt(self) -> None:
        cfg = self.config.mqtt
        if cfg is None or self.outbox is None:
            logger.info("no broker configured: results stay in the outbox until one is")
            return
        d = self.config.device
        password = cfg.password.get_secret_value() if cfg.password is not None else None
        def will() -> tuple[str, bytes]:  # built again for every connection: a fresh message_id each time
            return m.topic(d.site, d.id, "status"), self.status_payload("offline")

        self.link = MqttLink(cfg, cfg.client_id or f"edge-{d.site}-{d.id}", self.metrics, will, password)
        self.link.on_connected.append(self._announce)
        self.link.subscribe(m.topic(d.site, d.id, "cmd/+"), self.commands.handle)
        self.forwarder = Forwarder(self.outbox, self.link, cfg.max_inflight)
        self.link.start()
        self.forwarder.start()

    def start_http(self) -> None:
        h = self.config.http
        if h.enabled:
            token = read_token(h.token_file) if h.token_file else None
            self.http = HealthServer(h.host, h.port, self.metrics.registry, self.health, token)
            self.http.start()

    def start_pipelines(self) -> None:
        for pipeline in self.pipelines:
            pipeline.runner.start()
            pipeline.start()

    def start_status_watcher(self) -> None:
        """Republish the retained status whenever a pipeline's state changes (starting, running, degraded, stopped)."""
        self.status_watcher.check()
        self.status_watcher.start()

    def _publish_status(self, statuses: list[m.PipelineStatus]) -> None:
        if self.link is not None:
            d = self.config.device
            self.link.publish(m.topic(d.site, d.id, "status"), self.status_payload("online", statuses), retain=True)

    def start_metrics_publisher(self) -> None:
        self._metrics_thread = threading.Thread(target=self._metrics_loop, name="metrics", daemon=True)
        self._metrics_thread.start()

    # ------------------------------------------------------------ device state messages

    def status_payload(self, state: str, statuses: list[m.PipelineStatus] | None = None) -> bytes:
        """The retained status; offline (graceful stop or last will) says every pipeline is stopped."""
        assert self.factory is not None
        if state == "offline":
            statuses = [
                m.PipelineStatus(name=p.pipeline, task=p.task.kind, state="stopped", detail="device offline")
                for p in self.pipelines
            ]
        status = m.StatusMessage(
            **self.factory.untracked_envelope(time.time()),
            state=state,
            agent_version=__version__,
            started_at=self.started_at,
            pipelines=self.pipeline_statuses() if statuses is None else statuses,
            published_at=m.utcnow(),
        )
        return status.model_dump_json().encode()

    def pipeline_statuses(self) -> list[m.PipelineStatus]:
        """Each pipeline's state from the check /healthz runs (edge_agent/status.py maps one to the other)."""
        return [pipeline_status(p, self.config.http.health_stale_s) for p in self.pipelines]

    def model_payload(self) -> bytes:
        assert self.factory is not None
        models = [
            m.ActiveModel(
                pipeline=p.pipeline,
                name=p.task.model.manifest.name,
                version=p.task.model.manifest.version,
                variant=p.task.model.variant,
                sha256=p.task.model.entry.sha256,
                runtime=p.task.model.runtime.description,
                accuracy=p.task.model.manifest.metrics,
            )
            for p in self.pipelines
        ]
        envelope = self.factory.untracked_envelope(time.time())
        msg = m.ModelMessage(**envelope, models=models, update=self.fleet.last, published_at=m.utcnow())
        return msg.model_dump_json().encode()

    def publish_model_update(self, pipeline: Pipeline, status: m.ModelUpdateStatus) -> None:
        """A model update step: the retained `model` topic now, and a durable `model_update` event."""
        if status.step in ("swapped", "promoted", "rolled_back"):
            self._record_model(pipeline.pipeline, pipeline.task.model)
        if self.link is not None:
            d = self.config.device
            self.link.publish(m.topic(d.site, d.id, "model"), self.model_payload(), retain=True)
        if self.outbox is None or self.factory is None:
            return
        event = m.EventMessage(
            **self.factory.envelope(time.time()), pipeline=pipeline.pipeline, task=pipeline.task.kind,
            event="model_update", severity="info" if status.ok else "critical",
            subject=f"{status.name}@{status.version}", details=status.model_dump(mode="json"),
        )  # fmt: skip
        self.outbox.put(self.factory.topic(f"{pipeline.task.kind}/event"), m.serialize_for_store(event))

    def _announce(self, link: MqttLink) -> None:
        """On every (re)connect: retained online status, active models and Home Assistant discovery."""
        d = self.config.device
        link.publish(m.topic(d.site, d.id, "status"), self.status_payload("online"), retain=True)
        link.publish(m.topic(d.site, d.id, "model"), self.model_payload(), retain=True)
        for topic, payload in discovery_messages(self.config):
            link.publish(topic, payload, retain=True)

    def _metrics_loop(self) -> None:
        interval = self.config.metrics.publish_interval_s
        last = time.monotonic()
        while not self._stop.wait(interval):
            now = time.monotonic()
            self.publish_metrics(now - last)
            last = now

    def publish_metrics(self, period_s: float) -> None:
        """Latency percentiles and backlog since the last call, through the outbox (KPIs need every one)."""
        if self.outbox is None or self.factory is None:
            return
        target = self.config.metrics.target_ms
        summaries = []
        for p in self.pipelines:
            summary = p.latency.summary(p.pipeline, p.task.kind, target)
            summary.figures.update(p.figures())
            summaries.append(summary)
            p.latency.reset()
        msg = m.MetricsMessage(
            **self.factory.envelope(time.time()),
            period_s=max(period_s, 1e-3),
            uptime_s=(datetime.now(timezone.utc) - self.started_at).total_seconds(),
            pipelines=summaries,
            backlog=self.outbox.backlog,
            backlog_oldest_s=self.outbox.oldest_age(),
            dropped=self.outbox.dropped_total(),
            replayed_count=self.forwarder.replayed if self.forwarder else 0,
        )
        self.outbox.put(self.factory.topic("metrics"), m.serialize_for_store(msg))

    def _counter(self, name: str, labels: dict[str, str]) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    # ------------------------------------------------------------ health and shutdown

    def health(self) -> tuple[bool, dict[str, str]]:
        stale = self.config.http.health_stale_s
        checks = {p.pipeline: p.health(stale) for p in self.pipelines}
        if self.outbox is not None:
            stalled_after = self.config.mqtt.stalled_after_s if self.config.mqtt else 60.0
            checks.update(delivery_checks(self.outbox, self.link, stalled_after))
        return all(ok for ok, _ in checks.values()), {name: reason for name, (_, reason) in checks.items()}

    def finished(self) -> bool:
        """True once every pipeline's source has ended (file replays) and its queue is empty."""
        return all(not p.is_alive() for p in self.pipelines)

    def drain(self, timeout_s: float) -> bool:
        """Wait until the broker has acknowledged everything stored, at most timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox is None or self.outbox.backlog == 0:
                return True
            time.sleep(0.05)
        return False

    def _stop_pipelines(self) -> None:
        for p in self.pipelines:
            p.runner.stop()
            p.stop()
        for p in self.pipelines:
            if p.ident is not None:  # a boot that failed half-way has pipelines that never started
                p.join(timeout=1.5)

    def stop(self, drain_s: float = 1.5) -> None:
        """Stop sources, then pipelines, flush metrics, give the forwarder a moment, say offline."""
        self._stop.set()
        self.fleet.stop()
        self.status_watcher.stop()
        self._stop_pipelines()
        self.publish_metrics(1.0)
        if self.link is not None and self.link.connected.is_set():
            self.drain(drain_s)
        if self.forwarder is not None:
            self.forwarder.stop()
            self.forwarder.join(timeout=1.0)
        if self.link is not None:
            d = self.config.device
            self.link.stop(last_words=(m.topic(d.site, d.id, "status"), self.status_payload("offline")))
        for p in self.pipelines:
            for sink in p.sinks:
                sink.close()
        if self.http is not None:
            self.http.stop()
        if self.outbox is not None:
            self.outbox.close()
        logger.info("stopped")


def window_spec(pc: PipelineConfig, model: LoadedModel) -> WindowSpec | None:
    """Sensor sources cut windows the model was fitted on: size, stride and channel order from the manifest."""
    if pc.source.kind not in SENSOR_SOURCES:
        return None
    params: dict[str, Any] = model.manifest.params
    window = params.get("window") or {}
    channels = list(params.get("channels") or [])
    src: Any = pc.source
    if pc.source.kind == "modbus":
        channels = [r.name for r in src.registers]
    elif getattr(src, "channels", None):
        channels = list(src.channels)
    size = int(window.get("size", 1))
    stride = int(src.window_stride or window.get("stride", 1))
    return WindowSpec(size=size, stride=stride, channels=tuple(channels))
