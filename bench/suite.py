"""The benchmark run: discover models, time every file x thread count, measure accuracy, judge each job.

A model or job that is missing or broken becomes an entry with its error; the run always finishes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.accuracy import AccuracyOptions, measure_accuracy
from bench.latency import Case, run_in_process, run_isolated
from bench.verdict import judge
from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.manifest import MANIFEST_NAME, Manifest, load_manifest, sha256_file

REPO = Path(__file__).resolve().parents[1]
# Shipped models in a checkout, in the Jetson / Raspberry Pi images, and fitted on site (in that order).
MODEL_ROOTS = (REPO / "models", Path("/opt/edge-agent/models"), Path("/data/models"))
COMBINATIONS = ("onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8")
RUNTIMES = {"onnx": "onnxruntime", "tflite": "litert"}
NOT_MODELS = ("build", "pretrained")  # build scripts; pretrained weights the fits start from (no manifest)
JOBS = ("sensor_anomaly", "defect", "shelf")


@dataclass
class Settings:
    """How hard to measure; the modes in bench.cli fill these in."""

    iterations: int = 300
    warmup: int = 30
    max_seconds: float = 25.0
    pool: int = 16
    threads: list[int] = field(default_factory=lambda: [1])
    target_ms: float = 100.0
    isolate: bool = True
    accuracy: bool = True
    accuracy_options: AccuracyOptions = field(default_factory=AccuracyOptions)


def discover(roots: list[Path]) -> list[Path]:
    """Model folders under the roots (a root may itself be one); the first folder of a name wins.

    A folder without manifest.yaml is kept, so that a model that is missing its manifest is reported
    rather than silently left out; build/ (the build scripts), pretrained/ (weights the fits start from) and
    hidden folders are not models.
    """
    found: dict[str, Path] = {}
    for root in (r.resolve() for r in roots):  # absolute: the cases run in processes with another cwd
        if (root / MANIFEST_NAME).is_file():
            found.setdefault(root.name, root)
        elif root.is_dir():
            for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                if folder.name not in NOT_MODELS and not folder.name.startswith((".", "_")):
                    found.setdefault(folder.name, folder)
    return list(found.values())


def missing_jobs(entries: list[dict[str, Any]]) -> list[str]:
    """Jobs of the product with no model that ran in this run."""
    ran = {e["task"] for e in entries if e["status"] == "ok"}
    return [job for job in JOBS if job not in ran]


class Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 28) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()

    def step(self, label: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {self.done}/{self.total} {elapsed:5.0f}s eta {eta:4.0f}s  {label}"
        if self.stream.isatty():
            self.stream.write("\r\x1b[K" + line + ("\n" if self.done >= self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def model_entry(path: Path) -> tuple[dict[str, Any], Manifest | None]:
    """Identity and file hashes of a model; a broken manifest becomes an error entry."""
    entry: dict[str, Any] = {"name": path.name, "path": _relative(path), "status": "ok", "error": None,
                             "task": None, "version": None, "default_variant": None, "files": {},
                             "not_shipped": [], "cases": [], "accuracy": None, "verdict": None}  # fmt: skip
    try:
        manifest = load_manifest(path)
    except EdgeAgentError as exc:
        entry.update(status="error", error=str(exc))
        return entry, None
    entry.update(task=manifest.task, version=manifest.version)  # the name stays the folder's: unique in a run
    entry["default_variant"] = manifest.default_variant
    for name, f in manifest.files.items():
        file = path / f.path
        actual = sha256_file(file) if file.is_file() else None
        entry["files"][name] = {"path": f.path, "format": f.format, "precision": f.precision, "sha256": f.sha256,
                                "sha256_ok": actual == f.sha256,
                                "size_bytes": file.stat().st_size if file.is_file() else None}  # fmt: skip
    entry["not_shipped"] = [c for c in COMBINATIONS if c not in manifest.files]
    return entry, manifest


def plan(models: list[Path], settings: Settings) -> list[tuple[Path, Case]]:
    cases = []
    for path in models:
        try:
            manifest = load_manifest(path)
        except EdgeAgentError:
            continue
        for variant in manifest.files:
            for threads in settings.threads:
                case = Case(str(path), variant, threads, settings.iterations, settings.warmup,
                            settings.max_seconds, settings.pool, 0, settings.target_ms)  # fmt: skip
                cases.append((path, case))
    return cases


def _case_row(case: Case, manifest_entry: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    info = manifest_entry["files"][case.variant]
    row = {"variant": case.variant, "format": info["format"], "precision": info["precision"],
           "runtime_kind": RUNTIMES.get(info["format"], info["format"]), "threads": case.threads}  # fmt: skip
    row.update(result)
    return row


def run_case(case: Case, settings: Settings) -> dict[str, Any]:
    if not settings.isolate:
        return run_in_process(case)
    return run_isolated(case, timeout_s=case.max_seconds * 4 + 180)


def run_accuracy(path: Path, variants: list[str], settings: Settings) -> dict[str, Any]:
    """In its own process too (same reasons as the latency cases)."""
    if not settings.isolate:
        return measure_accuracy(path, variants, settings.accuracy_options)
    cmd = [sys.executable, "-m", "bench.accuracy", "--model", str(path), "--variants", ",".join(variants),
           "--options", json.dumps(asdict(settings.accuracy_options))]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": "no accuracy result within 1800 s", "variants": {}}
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        tail = done.stderr.strip()[-1500:]
        return {"status": "error", "error": f"exit code {done.returncode}: {tail}", "variants": {}}
    return result


def run_suite(models: list[Path], settings: Settings, progress_stream: TextIO | None = None) -> list[dict[str, Any]]:
    entries = [model_entry(path) for path in models]
    cases = plan(models, settings)
    with_accuracy = [e for e, m in entries if m is not None] if settings.accuracy else []
    progress = Progress(len(cases) + len(with_accuracy), progress_stream)
    by_path = {str(path): entry for path, (entry, _m) in zip(models, entries)}
    for path, case in cases:
        entry = by_path[str(path)]
        result = run_case(case, settings)
        entry["cases"].append(_case_row(case, entry, result))
        status = result.get("status")
        p95 = result.get("e2e", {}).get("p95_ms")
        tail = f"e2e p95 {p95:.2f} ms" if status == "ok" and p95 is not None else str(status)
        progress.step(f"{entry['name']} {case.variant} {case.threads}t: {tail}")
    for entry in with_accuracy:
        ran = sorted({c["variant"] for c in entry["cases"] if c.get("status") == "ok"})
        path = next(p for p in models if str(p) in by_path and by_path[str(p)] is entry)
        entry["accuracy"] = run_accuracy(path, ran, settings)
        progress.step(f"{entry['name']} accuracy: {entry['accuracy'].get('status')}")
    for entry, manifest in entries:
        if manifest is not None:
            targets = {"latency_p95_ms": settings.target_ms}
            entry["verdict"] = judge(manifest.task, entry["cases"], entry["accuracy"], targets)
            if all(c.get("status") != "ok" for c in entry["cases"]):
                entry.update(status="error", error=entry.get("error") or "no variant of this model ran")
    return [e for e, _m in entries]


def cores_to_test(cores: int) -> list[int]:
    """1 thread (the daemon's per-pipeline budget) and every core, once each."""
    return sorted({1, max(1, cores)})


def environment_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
