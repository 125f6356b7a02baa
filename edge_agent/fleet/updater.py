"""One model update end to end, and the rollback or promotion after its probation."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent import messages as m
from edge_agent.errors import EdgeAgentError, UpdateError
from edge_agent.fleet.download import Downloader
from edge_agent.fleet.probation import ProbationJudge, read_counts
from edge_agent.fleet.request import UpdateRequest, parse_request
from edge_agent.fleet.selftest import run_self_test
from edge_agent.fleet.sources import MlflowRegistry, resolve_source
from edge_agent.fleet.store import ModelStore, Slot
from edge_agent.fleet.verify import check_sha256, check_signature
from edge_agent.runtime.registry import LoadedModel, load_model
from edge_agent.tasks.registry import create_task

if TYPE_CHECKING:
    from edge_agent.app import App
    from edge_agent.config import PipelineConfig
    from edge_agent.pipeline import Pipeline
    from edge_agent.tasks.base import Task

logger = logging.getLogger(__name__)


class ModelUpdater:
    """Runs cmd/model_update for a pipeline; reports every step through `app.publish_model_update`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.config = app.config.fleet
        self.store = ModelStore(self.config.store)
        self.last: m.ModelUpdateStatus | None = None
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # ------------------------------------------------------------ boot

    def boot_model_dir(self, pc: PipelineConfig) -> Path:
        """The folder to load at start: the kept version, or the last good one after a restart in probation."""
        state = self.store.state(pc.name)
        if state.probation and state.current is not None:
            failed, back = state.current, state.previous
            reason = f"the agent restarted during the probation of {failed.label}"
            state.current, state.previous, state.probation = back, None, False
            self.store.save(pc.name, state)
            running = back.label if back else "the configured model"
            self.last = self._status(pc.name, "rolled_back", False, reason, running, None, failed.name, failed.version)
            logger.warning("pipeline %s: %s; back on %s", pc.name, reason, running)
        if state.current is not None and Path(state.current.path).is_dir():
            return Path(state.current.path)
        return pc.model.path

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------ the command

    def update(self, pipeline: Pipeline, args: dict[str, Any]) -> str:
        request = parse_request(args)
        with self._lock:
            if pipeline.pipeline in self._busy:
                raise UpdateError(f"pipeline {pipeline.pipeline} is already updating or in probation")
            self._busy.add(pipeline.pipeline)
        try:
            model = self._prepare(pipeline, request)
        except EdgeAgentError as exc:
            self._report(pipeline, request, "failed", False, str(exc))
            self._release(pipeline.pipeline)
            raise UpdateError(f"{request.label}: {exc}") from exc
        self._swap(pipeline, request, model)
        return f"{request.label} runs; probation {self.config.probation_s:g} s"

    def _prepare(self, pipeline: Pipeline, request: UpdateRequest) -> LoadedModel:
        """Download, verify, unpack, load and self-test; the running model is untouched until all pass."""
        self._report(pipeline, request, "requested", True, request.source)
        resolved = resolve_source(request.source, self._mlflow())
        self._report(pipeline, request, "downloading", True, resolved.detail)
        part = self.store.staging_file(request.name, request.version, request.sha256)
        Downloader(self._tls(), self.config.max_download_bytes, self.config.allow_plain_http).fetch(
            resolved.url, part, resolved.headers, request.size
        )
        try:
            check_sha256(part, request.sha256)
        except UpdateError:
            part.unlink()  # corrupt or not what was asked: the next try starts from the first byte
            raise
        check_signature(part, request.signature, self.config.public_key_file)
        self._report(pipeline, request, "verified", True, f"sha256 {request.sha256[:12]}")
        folder = self.store.unpack(part, request.name, request.version)
        part.unlink()
        model = self._load(pipeline, folder, request)
        self._report(pipeline, request, "loaded", True, model.runtime.description)
        try:
            detail = run_self_test(model)
        except UpdateError:
            model.runtime.close()
            raise
        self._report(pipeline, request, "self_tested", True, detail)
        return model

    def _load(self, pipeline: Pipeline, folder: Path, request: UpdateRequest) -> LoadedModel:
        pc = self._pipeline_config(pipeline.pipeline)
        model = load_model(folder, pc.model.variant, pc.model.runtime)  # the pipeline's own runtime
        found = (model.manifest.name, model.manifest.version)
        if found != (request.name, request.version):
            model.runtime.close()
            raise UpdateError(f"the archive holds {found[0]} {found[1]}, the command asked for {request.label}")
        return model

    # ------------------------------------------------------------ swap, probation, outcome

    def _swap(self, pipeline: Pipeline, request: UpdateRequest, model: LoadedModel) -> None:
        task = create_task(self._pipeline_config(pipeline.pipeline).task, model, pipeline.task.context)
        baseline = read_counts(self.app.metrics.registry, pipeline.pipeline)
        old = pipeline.swap_task(task)
        state = self.store.state(pipeline.pipeline)
        state.previous = state.current or self._slot_of(old.model)
        state.current, state.probation = Slot(request.name, request.version, str(model.directory)), True
        self.store.save(pipeline.pipeline, state)
        self._report(pipeline, request, "swapped", True, f"between two inferences; {state.previous.label} kept")
        judge = ProbationJudge(self.config, self.app.config.metrics.target_ms, baseline)
        thread = threading.Thread(target=self._probation, args=(pipeline, request, old, judge), daemon=True,
                                  name=f"probation-{pipeline.pipeline}")  # fmt: skip
        thread.start()

    def _probation(
        self, pipeline: Pipeline, request: UpdateRequest, old: Task[Any, Any], judge: ProbationJudge
    ) -> None:
        self._report(pipeline, request, "probation", True, f"{self.config.probation_s:g} s")
        deadline = time.monotonic() + self.config.probation_s
        reason = None
        while reason is None and time.monotonic() < deadline:
            if self._stop.wait(self.config.check_interval_s):
                return  # shutting down: the state file says probation, the next start rolls back
            reason = judge.verdict(read_counts(self.app.metrics.registry, pipeline.pipeline))
        try:
            if reason is None:
                self._promote(pipeline, request, old)
            else:
                self._roll_back(pipeline, request, old, reason)
        finally:
            self._release(pipeline.pipeline)

    def _promote(self, pipeline: Pipeline, request: UpdateRequest, old: Task[Any, Any]) -> None:
        state = self.store.state(pipeline.pipeline)
        state.probation = False
        self.store.save(pipeline.pipeline, state)
        old.model.runtime.close()
        keep = {s.path for s in (state.current, state.previous) if s is not None}
        self.store.prune(request.name, keep)
        self._report(pipeline, request, "promoted", True, "probation passed")

    def _roll_back(self, pipeline: Pipeline, request: UpdateRequest, old: Task[Any, Any], reason: str) -> None:
        new = pipeline.swap_task(old)
        new.model.runtime.close()
        state = self.store.state(pipeline.pipeline)
        state.current, state.previous, state.probation = state.previous, None, False
        self.store.save(pipeline.pipeline, state)
        self._report(pipeline, request, "rolled_back", False, reason)

    # ------------------------------------------------------------ helpers

    def _report(self, pipeline: Pipeline, request: UpdateRequest, step: m.UpdateStep, ok: bool, reason: str) -> None:
        state = self.store.state(pipeline.pipeline)
        previous = state.previous.label if state.previous and state.probation else None
        status = self._status(pipeline.pipeline, step, ok, reason, pipeline.model_label, previous,
                              name=request.name, version=request.version)  # fmt: skip
        self.last = status
        (logger.info if ok else logger.warning)("pipeline %s: model update %s %s: %s", pipeline.pipeline,
                                                 request.label, step, reason)  # fmt: skip
        self.app.publish_model_update(pipeline, status)

    @staticmethod
    def _status(pipeline: str, step: m.UpdateStep, ok: bool, reason: str, running: str, previous: str | None,
                name: str, version: str) -> m.ModelUpdateStatus:  # fmt: skip
        return m.ModelUpdateStatus(pipeline=pipeline, name=name, version=version, step=step, ok=ok, reason=reason,
                                   running=running, previous=previous, at=m.utcnow())  # fmt: skip

    def _release(self, pipeline: str) -> None:
        with self._lock:
            self._busy.discard(pipeline)

    def _pipeline_config(self, name: str) -> PipelineConfig:
        return next(p for p in self.app.config.pipelines if p.name == name)

    @staticmethod
    def _slot_of(model: LoadedModel) -> Slot:
        return Slot(model.manifest.name, model.manifest.version, str(model.directory))

    def _tls(self) -> Any:
        from edge_agent.tlsfiles import build_context

        mqtt = self.app.config.mqtt
        return build_context(mqtt.tls) if mqtt is not None and mqtt.tls is not None else None

    def _mlflow(self) -> MlflowRegistry | None:
        uri = self.config.mlflow_uri
        return MlflowRegistry(uri, self.config.mlflow_token_file, self._tls()) if uri else None
