"""`roi-service serve | ingest | migrate`: settings from flags, environment (ROI_*) and secret files."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from roi_service.config import ServiceSettings
from roi_service.db.engine import make_engine, migrate
from roi_service.metrics import ServiceMetrics
from roi_service.snapshots import SnapshotStore, folder_beside

logger = logging.getLogger("roi_service")


class UsageError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _secret(value: str | None, file: str | None, what: str) -> SecretStr | None:
    if file:
        try:
            return SecretStr(Path(file).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise UsageError(f"cannot read the {what} file {file}: {exc.strerror}") from exc
    return SecretStr(value) if value else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roi-service", description=__doc__)
    parser.add_argument("--log-level", default=_env("ROI_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the API and dashboard (and the MQTT ingest unless --no-ingest)"),
        ("ingest", "run only the MQTT ingest consumer"),
        ("migrate", "create or upgrade the database schema"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument(
            "--db", default=_env("ROI_DATABASE_URL", "sqlite:///var/roi.db"), help="SQLite or PostgreSQL URL"
        )
        if name == "migrate":
            continue
        cmd.add_argument("--mqtt-host", default=_env("ROI_MQTT_HOST", "127.0.0.1"))
        cmd.add_argument("--mqtt-port", type=int, default=int(_env("ROI_MQTT_PORT", "1883") or 1883))
        cmd.add_argument("--mqtt-username", default=_env("ROI_MQTT_USERNAME"))
        cmd.add_argument("--mqtt-password-file", default=_env("ROI_MQTT_PASSWORD_FILE"))
        cmd.add_argument("--mqtt-ca", default=_env("ROI_MQTT_CA"), help="CA file; turns TLS on")
        cmd.add_argument("--client-id", default=_env("ROI_MQTT_CLIENT_ID", "roi-service"))
        cmd.add_argument("--share-group", default=_env("ROI_MQTT_SHARE_GROUP"), help="e.g. roi: $share/roi/...")
        if name == "serve":
            cmd.add_argument("--host", default=_env("ROI_HOST", "127.0.0.1"))
            cmd.add_argument("--port", type=int, default=int(_env("ROI_PORT", "8080") or 8080))
            cmd.add_argument("--token-file", default=_env("ROI_TOKEN_FILE"), help="file holding the bearer token")
            cmd.add_argument("--no-ingest", action="store_true", help="API and dashboard only")
            cmd.add_argument("--insecure-no-auth", action="store_true", help="no token (local experiments only)")
            cmd.add_argument("--period", default=_env("ROI_PERIOD", "7d"), help="dashboard default period")
    return parser


def _settings(args: argparse.Namespace) -> ServiceSettings:
    mqtt: dict[str, Any] = {}
    if args.command != "migrate":
        password = _secret(_env("ROI_MQTT_PASSWORD"), args.mqtt_password_file, "MQTT password")
        mqtt = {
            "host": args.mqtt_host,
            "port": args.mqtt_port,
            "username": args.mqtt_username,
            "password": password,
            "ca_file": args.mqtt_ca,
            "client_id": args.client_id,
            "shared_group": args.share_group,
        }
    token = None
    if args.command == "serve" and not args.insecure_no_auth:
        token = _secret(_env("ROI_TOKEN"), args.token_file, "token")
        if token is None or not token.get_secret_value():
            raise UsageError("no API token: set ROI_TOKEN or --token-file (or --insecure-no-auth for experiments)")
    try:
        return ServiceSettings.model_validate(
            {"database_url": args.db, "token": token, "mqtt": mqtt, "ingest": _ingest_env()}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


def _ingest_env() -> dict[str, Any]:
    """Ingest settings from the environment when set: ROI_INGEST_MAX_PAST_S / _MAX_FUTURE_S (the plausibility
    window), ROI_RESEND_INTERVAL_S / _GRACE_S / _ENABLED (asking devices for seq gaps)."""
    names = {"max_past_s": "ROI_INGEST_MAX_PAST_S", "max_future_s": "ROI_INGEST_MAX_FUTURE_S"}
    resend_names = {
        "interval_s": "ROI_RESEND_INTERVAL_S",
        "grace_s": "ROI_RESEND_GRACE_S",
        "enabled": "ROI_RESEND_ENABLED",
    }
    ingest: dict[str, Any] = {key: _env(name) for key, name in names.items() if _env(name)}
    resend = {key: _env(name) for key, name in resend_names.items() if _env(name)}
    return {**ingest, "resend": resend} if resend else ingest


def _start_ingest(settings: ServiceSettings, engine: Any, metrics: ServiceMetrics) -> Any:
    from roi_service.ingest.consumer import MqttConsumer
    from roi_service.ingest.plausible import limits_for
    from roi_service.ingest.writer import IngestWriter

    store = SnapshotStore(folder_beside(settings.database_url))  # JPEG files beside the database
    writer = IngestWriter(engine, metrics, limits_for(settings.ingest), snapshot_store=store)
    consumer = MqttConsumer(settings.mqtt, writer, settings.ingest)
    consumer.start()
    return consumer


def _start_registry(settings: ServiceSettings) -> Any:
    """The model registry and staged rollouts, when ROI_REGISTRY_URL (how devices reach this service) is set."""
    url = os.environ.get("ROI_REGISTRY_URL")
    if not url:
        return None
    from roi_service.registry.service import RegistryService

    beside = folder_beside(settings.database_url, Path("roi.snapshots"))
    root = Path(os.environ.get("ROI_REGISTRY_DIR") or beside.with_suffix(".registry"))
    registry = RegistryService(root, url, settings.mqtt)
    registry.start()
    return registry


def _serve(args: argparse.Namespace, settings: ServiceSettings, engine: Any) -> int:
    import uvicorn

    from roi_service.api.app import create_app

    metrics = ServiceMetrics()
    consumer = None if args.no_ingest else _start_ingest(settings, engine, metrics)
    token = settings.token.get_secret_value() if settings.token else None
    # `edge-agent demo` sets a one-run login link; nothing else does (it opens a session without the token).
    login_link = os.environ.get("ROI_DEMO_LOGIN_LINK") or None
    try:
        policy = _sample_policy(os.environ.get("ROI_MIN_SAMPLE_DAYS"))
    except UsageError as exc:
        print(f"roi-service: {exc}", file=sys.stderr)
        return 2
    snapshots = SnapshotStore(folder_beside(settings.database_url))
    registry = _start_registry(settings)
    app = create_app(
        engine,
        token,
        metrics,
        default_period=args.period,
        login_link=login_link,
        sample_policy=policy,
        snapshots=snapshots,
        registry=registry,
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
    finally:
        if registry is not None:
            registry.stop()
        if consumer is not None:
            consumer.stop()
    return 0


def _sample_policy(min_days: str | None) -> Any:
    """ROI_MIN_SAMPLE_DAYS: days of data before the dashboard extrapolates to a month (default 7)."""
    from roi_service.calc.evidence import SamplePolicy

    if not min_days:
        return SamplePolicy()
    try:
        return SamplePolicy(min_days=float(min_days))
    except ValueError as exc:
        raise UsageError(f"ROI_MIN_SAMPLE_DAYS={min_days!r} must be a number of days >= 0") from exc


def _ingest(settings: ServiceSettings, engine: Any) -> int:
    consumer = _start_ingest(settings, engine, ServiceMetrics())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    consumer.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings(args)
        engine = make_engine(settings.database_url)
        migrate(engine)
    except UsageError as exc:
        print(f"roi-service: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"roi-service: database {settings.database_url.split('@')[-1]}: {type(exc).__name__}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        print("schema up to date")
        return 0
    if args.command == "ingest":
        return _ingest(settings, engine)
    return _serve(args, settings, engine)


if __name__ == "__main__":
    raise SystemExit(main())
