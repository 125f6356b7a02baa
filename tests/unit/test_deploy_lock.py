"""The images' constraints files pin every dependency pyproject.toml declares, at versions it accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11; the images and CI run 3.11

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "docker" / "constraints"


def pins(name: str) -> dict[str, str]:
    lines = (CONSTRAINTS / name).read_text().splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(p) == 2 for p in pairs), f"{name}: every line is name==version"
    return {canonicalize_name(k): v for k, v in pairs}


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return found


@pytest.mark.parametrize(
    ("name", "extras"),
    [("py311.txt", ("cpu", "tflite", "openvino", "fleet")), ("jetson-py310.txt", ("fleet",))],
)
def test_every_declared_dependency_is_pinned_within_its_range(name: str, extras: tuple[str, ...]) -> None:
    pinned = pins(name)
    for requirement in declared(*extras):
        key = canonicalize_name(requirement.name)
        assert key in pinned, f"{name} does not pin {requirement.name}: run docker/constraints/lock.sh"
        assert requirement.specifier.contains(pinned[key], prereleases=True), f"{name}: {key}=={pinned[key]}"


def test_jetson_pins_keep_numpy_1_and_leave_the_runtime_to_nvidia() -> None:
    pinned = pins("jetson-py310.txt")
    assert pinned["numpy"].startswith("1.")
    assert "onnxruntime" not in pinned and "opencv-python-headless" not in pinned
    assert {"protobuf", "sympy", "flatbuffers", "coloredlogs"} <= set(pinned)  # onnxruntime-gpu 1.20.0's own


def test_jetson_install_needs_no_cpu_runtime_from_the_core_package() -> None:
    """onnxruntime and OpenCV are extras: the Jetson image's `pip check` has nothing missing to report."""
    core = {canonicalize_name(r.name) for r in declared()}
    assert not core & {"onnxruntime", "opencv-python-headless"}


@pytest.mark.slow
def test_pinned_set_downloads_as_aarch64_wheels(tmp_path: Path) -> None:
    """The Raspberry Pi image's pinned set exists as binary wheels for CPython 3.11 on aarch64 (needs the index)."""
    platforms = [a for minor in range(17, 37) for a in ("--platform", f"manylinux_2_{minor}_aarch64")]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.11", "--implementation", "cp", "--platform", "manylinux2014_aarch64", *platforms, "-d", str(tmp_path),
           "-r", str(CONSTRAINTS / "py311.txt")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    wheels = sorted(p.name for p in tmp_path.glob("*.whl"))
    assert len(wheels) == len(pins("py311.txt"))
    assert any(w.startswith("onnxruntime-1.32.0-") and "aarch64" in w for w in wheels)
