"""`edge-agent bench`: every shipped model x runtime x precision x threads against the 100 ms / 95% targets.

    edge-agent bench [--out DIR] [--mode full|quick|tiny] [--models DIR ...]
                     [--skab PATH] [--kolektor PATH] [--grocery PATH] [--publish --config agent.yaml]

Writes DIR/bench.json (validated against bench/schema.json), DIR/report.md and PNG plots. The
committed reference results are regenerated with `python -m bench.cli --out bench/results`.
Stop the agent first on a device: the benchmark and the daemon would compete for the same cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shlex
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.accuracy import AccuracyOptions
from bench.fingerprint import fingerprint, load_average
from bench.report import markdown, write_plots
from bench.suite import (
    MODEL_ROOTS,
    REPO,
    Settings,
    cores_to_test,
    discover,
    environment_threads,
    missing_jobs,
    run_suite,
)
from bench.verdict import GOAL_INT8_RATIO, GOAL_P95_MS, TARGETS

SCHEMA_PATH = Path(__file__).with_name("schema.json")
RESULT_NAME = "bench.json"
REPORT_NAME = "report.md"
# mode -> (timed items per case, warm-up items, seconds per case at most, input pool, accuracy set scale)
MODES: dict[str, tuple[int, int, float, int, int]] = {
    "full": (300, 30, 20.0, 16, 200),
    "quick": (100, 10, 6.0, 8, 40),
    "tiny": (12, 2, 2.0, 3, 8),
}
logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-agent bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("var/bench"), help="folder for bench.json, report.md, PNGs")
    p.add_argument("--mode", choices=sorted(MODES), default="full", help="how many items to time (default full)")
    p.add_argument("--models", type=Path, nargs="*", help="model folders or folders of them (default: shipped)")
    p.add_argument("--threads", help="comma-separated thread counts (default: 1 and all usable cores)")
    p.add_argument("--iterations", type=int, help="timed items per case (overrides the mode)")
    p.add_argument("--target-ms", type=float, default=TARGETS["latency_p95_ms"], help="latency target")
    p.add_argument("--skab", help="SKAB folder: sensor accuracy on SKAB instead of the synthetic recording")
    p.add_argument("--kolektor", help="KolektorSDD folder: defect accuracy on it (bench.defect_kolektor)")
    p.add_argument("--grocery", help="Grocery Store folder: held-out shelves from real product photos")
    p.add_argument("--fit-python", help="python with the train extra, for --skab (it fits a model per SKAB file)")
    p.add_argument("--no-accuracy", action="store_true", help="latency only")
    p.add_argument("--no-peers", action="store_true", help="skip the optional Ultralytics comparison")
    p.add_argument("--in-process", action="store_true", help="run every case in this process (debugging)")
    p.add_argument("--publish", action="store_true", help="send the summary to the broker of --config")
    p.add_argument("--config", type=Path, help="agent.yaml whose device and mqtt settings --publish uses")
    p.add_argument("--from-json", type=Path, help="measure nothing: redo report and plots (and --publish) from a JSON")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    iterations, warmup, seconds, pool, samples = MODES[args.mode]
    if args.threads:
        try:
            threads = sorted({int(t) for t in args.threads.split(",")})
        except ValueError:
            raise ValueError(f"--threads takes comma-separated integers, got {args.threads!r}") from None
    else:
        threads = cores_to_test(environment_threads())
    if any(t < 1 for t in threads):
        raise ValueError("--threads takes positive integers")
    if (args.iterations is not None and args.iterations < 1) or args.target_ms <= 0:
        raise ValueError("--iterations and --target-ms must be positive")
    options = AccuracyOptions(
        skab=args.skab, kolektor=args.kolektor, grocery=args.grocery, fit_python=args.fit_python, samples=samples
    )
    return Settings(iterations=args.iterations or iterations, warmup=warmup, max_seconds=seconds, pool=pool,
                    threads=threads, target_ms=args.target_ms, isolate=not args.in_process,
                    accuracy=not args.no_accuracy, accuracy_options=options)  # fmt: skip


def summary_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The compact per-case table that goes over MQTT (no samples)."""
    rows = []
    for m in models:
        acc = (m.get("accuracy") or {}).get("variants", {})
        for c in m["cases"]:
            ok = c.get("status") == "ok"
            rows.append({"model": m["name"], "task": m["task"], "variant": c["variant"], "threads": c["threads"],
                         "precision": c.get("precision"), "status": c.get("status"),
                         "e2e_p50_ms": c["e2e"]["p50_ms"] if ok else None,
                         "e2e_p95_ms": c["e2e"]["p95_ms"] if ok else None,
                         "bare_p95_ms": c["bare"]["p95_ms"] if ok else None,
                         "under_target_ratio": c["e2e"]["under_target_ratio"] if ok else None,
                         "accuracy_ratio_to_fp32": (acc.get(c["variant"]) or {}).get("ratio_to_fp32")})  # fmt: skip
    return rows


def _settings_dict(settings: Settings) -> dict[str, Any]:
    return {
        "iterations": settings.iterations,
        "warmup": settings.warmup,
        "max_seconds": settings.max_seconds,
        "pool": settings.pool,
        "threads": settings.threads,
        "target_ms": settings.target_ms,
        "isolate": settings.isolate,
        "accuracy": asdict(settings.accuracy_options) if settings.accuracy else None,
    }


def build_result(args: argparse.Namespace, argv: list[str], models: list[Path], settings: Settings) -> dict[str, Any]:
    started = time.monotonic()
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    fp = fingerprint(REPO)
    fp["load_before"] = load_average()
    entries = run_suite(models, settings)
    notes: list[str] = []
    peers: dict[str, Any] = {"status": "skipped", "note": "--no-peers"}
    if not args.no_peers:
        from bench.peers import compare

        peers = compare(entries, settings)
    fp["load_after"] = load_average()
    fp["models"] = {m["name"]: {k: f["sha256"] for k, f in m["files"].items()} for m in entries}
    if not models:
        notes.append("no model folder was found: nothing was measured")
    if not args.models:
        notes += [f"job {job}: no shipped model of this job ran in this run" for job in missing_jobs(entries)]
    return {
        "schema_version": 1,
        "kind": "edge-agent-bench",
        "created_at": created,
        "command": "edge-agent bench " + shlex.join(argv),
        "mode": args.mode,
        "duration_s": round(time.monotonic() - started, 1),
        "settings": _settings_dict(settings),
        "fingerprint": fp,
        "targets": {"latency_p95_ms": settings.target_ms, "int8_ratio": TARGETS["int8_ratio"]},
        "goals": {"latency_p95_ms": GOAL_P95_MS, "int8_ratio": GOAL_INT8_RATIO},
        "models": entries,
        "verdicts": {m["name"]: bool(m["verdict"] and m["verdict"]["pass"]) for m in entries},
        "summary": summary_rows(entries),
        "peers": peers,
        "notes": notes,
    }


def validate(result: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> list[str]:
    """Schema errors (empty when valid); jsonschema is a test/bench dependency, so its absence is a note."""
    try:
        import jsonschema
    except ImportError:
        return []
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(result)]


def write_outputs(result: dict[str, Any], out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_NAME).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plots = write_plots(result, out)
    (out / REPORT_NAME).write_text(markdown(result, plots), encoding="utf-8")
    return plots


def _load_or_measure(args: argparse.Namespace, argv: list[str], settings: Settings) -> dict[str, Any] | None:
    if args.from_json is not None:
        try:
            loaded: dict[str, Any] = json.loads(args.from_json.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            print(f"error: cannot read {args.from_json}: {exc}", file=sys.stderr)
            return None
        return loaded
    missing = [p for p in (args.models or []) if not p.exists()]
    if missing:
        print(f"error: model folder {missing[0]} does not exist", file=sys.stderr)
        return None
    models = discover(list(args.models) if args.models else list(MODEL_ROOTS))
    return build_result(args, argv, models, settings)


def _note(result: dict[str, Any], text: str) -> None:
    notes = result.setdefault("notes", [])
    if text not in notes:
        notes.append(text)


def _finish(args: argparse.Namespace, result: dict[str, Any]) -> int:
    """Check, write, print the verdicts and publish: the steps after the measurements."""
    problems = validate(result)
    if problems:
        _note(result, f"result does not match bench/schema.json: {problems[:3]}")
    elif importlib.util.find_spec("jsonschema") is None:
        _note(result, "not checked against bench/schema.json here: jsonschema is not installed")
    plots = write_outputs(result, args.out)
    print(f"wrote {args.out / RESULT_NAME}, {args.out / REPORT_NAME} and {len(plots)} plot(s)", file=sys.stderr)
    for model in result["models"]:
        verdict = model.get("verdict") or {"state": f"error: {model.get('error')}"}
        print(f"{model['name']}: {verdict['state'].upper()}", file=sys.stderr)
    if problems:
        print(f"error: result does not match the schema: {problems[0]}", file=sys.stderr)
        return 1
    if args.publish:
        from bench.publish import publish

        return publish(result, args.config)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.publish and args.config is None:
        print("error: --publish needs --config agent.yaml (the device identity and broker settings)", file=sys.stderr)
        return 2
    try:
        settings = settings_from(args)
        result = _load_or_measure(args, argv, settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: no result written", file=sys.stderr)
        return 130
    return 2 if result is None else _finish(args, result)


if __name__ == "__main__":
    raise SystemExit(main())
