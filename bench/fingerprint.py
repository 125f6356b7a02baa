"""Device fingerprint for a benchmark result: what machine, software and model files produced the numbers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from edge_agent import __version__

# Distributions whose versions change the numbers; absent ones are reported as null, not skipped.
PACKAGES = ("onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime", "numpy", "opencv-python-headless")
# CPU features that decide whether int8 pays off (x86 VNNI, ARM dot product).
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "asimddp", "i8mm")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_info(proc: Path = Path("/proc")) -> dict[str, Any]:
    """CPU model and int8-relevant feature flags from /proc/cpuinfo (x86 and ARM spell them differently)."""
    model = ""
    flags: set[str] = set()
    for line in _read(proc / "cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return {"model": model or platform.processor() or platform.machine(), "int8_flags": sorted(flags & set(INT8_FLAGS))}


def memory_mb(proc: Path = Path("/proc")) -> float | None:
    for line in _read(proc / "meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return None


def usable_cores() -> int:
    """Cores this process may run on: a container's CPU set, not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def os_name(etc: Path = Path("/etc")) -> str:
    for line in _read(etc / "os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def board(root: Path = Path("/")) -> str | None:
    """Raspberry Pi and Jetson boards name themselves in the device tree; PCs have none."""
    text = _read(root / "proc" / "device-tree" / "model").strip("\x00 \n")
    return text or None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def fingerprint(repo: Path, proc: Path = Path("/proc")) -> dict[str, Any]:
    """Everything a buyer needs to compare two results; model hashes are added per model by the caller."""
    cpu = cpu_info(proc)
    return {
        "cpu_model": cpu["model"],
        "cpu_int8_flags": cpu["int8_flags"],
        "cores": usable_cores(),
        "cores_total": os.cpu_count() or 1,
        "memory_mb": memory_mb(proc),
        "os": os_name(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "board": board(),
        "container": Path("/.dockerenv").exists() or Path("/run/.containerenv").exists(),
        "python": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "edge_agent": __version__,
        "git_commit": git_commit(repo),
        "packages": package_versions(),
    }
