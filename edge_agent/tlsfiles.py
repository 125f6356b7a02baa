"""The TLS context of the broker link, built from mqtt.tls; `check` and `run` load the files the same way."""

from __future__ import annotations

import ssl
from pathlib import Path

from edge_agent.config import TlsConfig
from edge_agent.errors import BrokerLinkError


def _need_file(field: str, path: Path) -> None:
    if not path.is_file():
        raise BrokerLinkError(f"mqtt.tls.{field}: file {path} not found; paths are relative to the config file")


def build_context(tls: TlsConfig) -> ssl.SSLContext:
    """An SSLContext that verifies the broker; BrokerLinkError names the field and file that is wrong."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if tls.ca_file is not None:
        _need_file("ca_file", tls.ca_file)
        try:
            context.load_verify_locations(cafile=str(tls.ca_file))
        except (ssl.SSLError, ValueError) as exc:
            raise BrokerLinkError(
                f"mqtt.tls.ca_file: {tls.ca_file} is not a PEM CA certificate ({exc}); "
                "use the CA that signed the broker's certificate"
            ) from exc
    if tls.cert_file is not None and tls.key_file is not None:
        _need_file("cert_file", tls.cert_file)
        _need_file("key_file", tls.key_file)
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (ssl.SSLError, ValueError) as exc:
            raise BrokerLinkError(
                f"mqtt.tls.cert_file/key_file: {tls.cert_file} and {tls.key_file} are not a matching PEM certificate "
                f"and key ({exc}); export both as PEM, key unencrypted"
            ) from exc
    if tls.insecure:
        context.check_hostname = False
    return context
