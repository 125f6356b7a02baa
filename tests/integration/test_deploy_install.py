"""The CPU path of docker/install.sh, as CI runs it: a fresh venv, the package with its runtimes, the smoke check.

This is what both Dockerfiles run (without apt and hardware), so a broken install step fails here before
an image build. It downloads and installs the runtimes (about a minute with a warm pip cache).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shipped_models(into: Path) -> list[str]:
    """Every model folder in models/ plus the test suite's tiny model, so at least one model always runs."""
    into.mkdir()
    folders = [p.parent for p in (ROOT / "models").glob("*/manifest.yaml")] + [ROOT / "tests/data/tiny-classifier"]
    for folder in folders:
        (into / folder.name).symlink_to(folder)
    return sorted(f.name for f in folders)


def test_cpu_install_path_installs_and_passes_the_smoke_check(tmp_path: Path) -> None:
    names = shipped_models(tmp_path / "models")
    venv = tmp_path / "venv"
    cmd = ["bash", str(ROOT / "docker/install.sh"), "--cpu-only", "--venv", str(venv), "--src", str(ROOT),
           "--models", str(tmp_path / "models")]  # fmt: skip
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "failed" in done.stdout and ", 0 failed," in done.stdout
    for name in names:
        assert f"OK   {name} " in done.stdout, f"{name} was not smoke-checked:\n{done.stdout}"
    version = subprocess.run(
        [str(venv / "bin" / "edge-agent"), "--version"], check=False, capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("edge-agent ")
