"""Every shipped example config passes `edge-agent check` (models, hashes and files included)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.check import check_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_check(path: Path) -> None:
    config = check_config(path, environ={})
    assert config.pipelines
