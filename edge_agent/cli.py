"""`edge-agent`: run | demo | check | schema | models | fit | zones | bench."""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from edge_agent import __version__
from edge_agent.errors import ConfigError, EdgeAgentError

logger = logging.getLogger("edge_agent")

# Commands implemented by the jobs and the benchmark, imported only when used (they may need extras).
DELEGATED: dict[tuple[str, ...], tuple[str, str]] = {
    ("fit", "sensor"): ("edge_agent.tasks.sensor.fit", "main"),
    ("fit", "defect"): ("edge_agent.tasks.defect.fit", "main"),
    ("zones",): ("edge_agent.tasks.shelf.zones", "main"),
    ("models", "import"): ("edge_agent.models_import", "main"),
    ("bench",): ("bench.cli", "main"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    delegated = _delegated(args_list)
    if delegated is not None:
        return delegated
    _one_blas_thread()
    parser = _parser()
    args = parser.parse_args(args_list)
    from edge_agent.logs import setup_logging

    setup_logging(args.log_level, args.log_format)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except EdgeAgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _one_blas_thread() -> None:
    """Hold numpy's BLAS to one thread in the daemon (read when numpy loads, so before any job module is imported).

    The defect job's nearest-neighbour product is a BLAS call: OpenBLAS would otherwise start a thread per
    core in every pipeline and fight the runtimes' own budgeted threads (FIELD_NOTES: the 2x cost of
    contention). A value the technician sets in the environment wins.
    """
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _delegated(argv: list[str]) -> int | None:
    words = [a for a in argv if not a.startswith("-")]
    for key, (module, attr) in DELEGATED.items():
        if tuple(words[: len(key)]) == key:
            rest = argv[argv.index(key[-1]) + 1 :]
            from edge_agent.logs import setup_logging

            setup_logging("info")
            try:
                func: Callable[[list[str]], int] = getattr(importlib.import_module(module), attr)
            except ImportError as exc:
                print(
                    f"error: `edge-agent {' '.join(key)}` is not available: {exc}. "
                    "Install the extra it needs, e.g. pip install 'edge-agent[train]'",
                    file=sys.stderr,
                )
                return 2
            return func(rest)
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Edge AI appliance daemon.")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"], help="json: one JSON object a line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the pipelines of a config until stopped")
    run.add_argument("config", type=Path)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="run the bundled demo (bundled models, sample inputs, embedded broker)")
    demo.add_argument("--config", type=Path, default=None, help="demo config (default: examples/demo.yaml)")
    demo.add_argument("--seconds", type=float, default=60.0, help="stop after this long (0 = until Ctrl-C)")
    demo.add_argument("--no-service", action="store_true", help="do not start roi_service beside the agent")
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser("check", help="validate a config and the models and files it names")
    check.add_argument("config", type=Path)
    check.set_defaults(func=cmd_check)

    schema = sub.add_parser("schema", help="print the config's JSON Schema")
    schema.set_defaults(func=cmd_schema)

    models = sub.add_parser("models", help="list, verify or quantize models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    for name, helptext in (("list", "list models and variants"), ("verify", "check every file's sha256 and shapes")):
        p = msub.add_parser(name, help=helptext)
        p.add_argument("--dir", type=Path, default=Path("models"), help="models folder (default: models)")
        p.set_defaults(func=cmd_models_list if name == "list" else cmd_models_verify)
    q = msub.add_parser("quantize", help="static int8 (QDQ, per-channel) copy of an fp32 ONNX variant")
    q.add_argument("model_dir", type=Path)
    q.add_argument("--calibration", type=Path, required=True, help=".npy array of inputs, first axis = batches")
    q.add_argument("--from-variant", default="onnx-fp32")
    q.add_argument("--variant", default="onnx-int8")
    q.add_argument("--output", default="model.int8.onnx", help="file name inside the model folder")
    q.add_argument(
        "--activations",
        choices=["uint8", "int8"],
        default="uint8",
        help="uint8 (U8S8, default: fastest with onnxruntime's CPU kernels as measured) or int8 (S8S8)",
    )
    q.set_defaults(func=cmd_models_quantize)

    for key in DELEGATED:  # listed in --help; handled before parsing
        if len(key) == 1:
            sub.add_parser(key[0], help=f"see `edge-agent {key[0]} --help`")
    fit = sub.add_parser("fit", help="fit a model on site: `fit sensor --help`, `fit defect --help`")
    fit.add_argument("job", choices=["sensor", "defect"])
    return parser


# ---------------------------------------------------------------- commands


def cmd_check(args: argparse.Namespace) -> int:
    from edge_agent.check import check_config

    config = check_config(args.config)
    print(f"{args.config}: ok ({len(config.pipelines)} pipeline(s): {', '.join(p.name for p in config.pipelines)})")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from edge_agent.config import AgentConfig

    print(json.dumps(AgentConfig.model_json_schema(), indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.check import check_config

    config = check_config(args.config, load_models=False)  # the app loads (and so checks) each model itself
    if config.mqtt is None and any("mqtt" in p.sinks for p in config.pipelines):
        logger.warning("no mqtt section: results are kept in the outbox until a broker is configured")
    return run_app(config)


# Every wait of App.stop is bounded (about 10 s in all, most of it only with a broker that stops answering). If a
# stop still takes longer, the stacks of every thread go to stderr and the process ends with status 1: what was
# produced is in the outbox already (committed before it is sent), and the broker says offline by the last will.
STOP_DEADLINE_S = 15.0


def run_app(config: object, seconds: float = 0.0) -> int:
    """Start the daemon, stop on SIGTERM/SIGINT (within STOP_DEADLINE_S), or when every replay has ended."""
    from edge_agent.app import App
    from edge_agent.config import AgentConfig

    assert isinstance(config, AgentConfig)
    app = App(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        app.start()
        waited = 0.0
        while not stop.wait(0.2):
            waited += 0.2
            if app.finished():
                logger.info("all sources have ended; sending what is left")
                app.drain(30.0)
                break
            if seconds and waited >= seconds:
                break
    finally:
        faulthandler.dump_traceback_later(STOP_DEADLINE_S, exit=True)
        try:
            app.stop()
        finally:
            faulthandler.cancel_dump_traceback_later()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.demo import run_demo

    return run_demo(args.config, args.seconds, with_service=not args.no_service)


def cmd_models_list(args: argparse.Namespace) -> int:
    from edge_agent.runtime.manifest import load_manifest

    for folder in sorted(p for p in args.dir.iterdir() if (p / "manifest.yaml").is_file()):
        mf = load_manifest(folder)
        print(f"{mf.name} {mf.version} task={mf.task} decoder={mf.decoder}")
        for key, entry in mf.files.items():
            mark = " (default)" if key == mf.default_variant else ""
            print(f"  {key:<14} {entry.format:<6} {entry.precision:<5} {entry.path}{mark}")
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    from edge_agent.config import LiteRTConfig, OnnxRuntimeConfig
    from edge_agent.errors import RuntimeUnavailableError
    from edge_agent.runtime.manifest import load_manifest
    from edge_agent.runtime.registry import load_model

    failures = 0
    for folder in sorted(p for p in args.dir.iterdir() if (p / "manifest.yaml").is_file()):
        for key, entry in load_manifest(folder).files.items():
            rc = OnnxRuntimeConfig() if entry.format == "onnx" else LiteRTConfig(kind="litert")
            try:
                load_model(folder, key, rc, warmup=True)
                print(f"ok      {folder.name}/{key}")
            except RuntimeUnavailableError as exc:
                print(f"skipped {folder.name}/{key}: {exc}")
            except EdgeAgentError as exc:
                failures += 1
                print(f"FAILED  {folder.name}/{key}: {exc}")
    return 1 if failures else 0


def cmd_models_quantize(args: argparse.Namespace) -> int:
    from edge_agent.runtime.manifest import load_manifest
    from edge_agent.runtime.quant_ranges import input_range
    from edge_agent.runtime.quantize import load_calibration, quantize_onnx, record_int8_variant

    manifest = load_manifest(args.model_dir)
    _, entry = manifest.variant(args.from_variant)
    quantize_onnx(
        args.model_dir / entry.path,
        args.model_dir / args.output,
        load_calibration(args.calibration),
        manifest.inputs[0].name,
        activations=args.activations,
        value_range=input_range(manifest.inputs[0]),
    )
    record_int8_variant(args.model_dir, args.from_variant, args.output, args.variant)
    print(f"wrote {args.model_dir / args.output} as variant {args.variant}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
