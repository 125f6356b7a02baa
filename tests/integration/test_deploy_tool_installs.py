"""scripts/ensure_promtool.sh installs the promtool binary alone: no Prometheus server, service or user."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _system_path_without_promtool() -> str:
    found = shutil.which("promtool")
    drop = {str(Path(found).parent)} if found else set()
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p not in drop)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None, reason="needs apt-get")
def test_ensure_promtool_installs_only_the_binary(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": _system_path_without_promtool(), "PROMTOOL_DIR": str(tmp_path / "bin")}
    done = subprocess.run(["bash", str(ROOT / "scripts/ensure_promtool.sh")], env=env, check=False,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["promtool"]
    version = subprocess.run([str(tmp_path / "bin/promtool"), "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and "promtool" in version.stdout + version.stderr
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "prometheus"], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert "installed" not in status.stdout.replace("not-installed", ""), "the Prometheus server package was installed"


def test_tool_scripts_pass_shell_syntax_check_and_skip_recommends() -> None:
    for name in ("ensure_promtool.sh", "ensure_chromium.sh"):
        assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / name)], check=False).returncode == 0
    chromium = (ROOT / "scripts/ensure_chromium.sh").read_text()
    assert "apt-get install -y -qq --no-install-recommends chromium" in chromium
    assert "apt-get install" not in (ROOT / "scripts/ensure_promtool.sh").read_text()
