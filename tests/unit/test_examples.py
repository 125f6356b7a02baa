"""Every shipped example config passes `edge-agent check` (models, hashes and files included).

Examples that name a broker CA (`/etc/edge-agent/ca.crt`) are checked as on a device that has one installed:
the environment override a technician would use points at a real CA made for the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.check import check_config
from edge_agent.errors import ConfigError
from tests.support.fleet import make_pki

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_check(path: Path, tmp_path: Path) -> None:
    environ = {}
    text = path.read_text()
    if "ca_file:" in text:
        ca, _ = make_pki(tmp_path / "pki")
        environ["EDGE_AGENT__MQTT__TLS__CA_FILE"] = str(ca)
        if "cert_file:" in text:  # a client certificate and key that parse, as the device's own would
            environ["EDGE_AGENT__MQTT__TLS__CERT_FILE"] = str(ca.parent / "server.crt")
            environ["EDGE_AGENT__MQTT__TLS__KEY_FILE"] = str(ca.parent / "server.key")
    config = check_config(path, environ=environ)
    assert config.pipelines


def test_an_example_naming_a_missing_ca_is_refused_by_check() -> None:
    with_ca = [p for p in EXAMPLES if "ca_file:" in p.read_text()]
    assert with_ca
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_file"):
        check_config(with_ca[0], environ={"EDGE_AGENT__MQTT__TLS__CA_FILE": "/nonexistent/ca.crt"})
