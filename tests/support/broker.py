"""A real Mosquitto process for tests: started on a free loopback port, stoppable and restartable."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class Broker:
    """A Mosquitto process; `stop()` and `start()` simulate an outage on the same port."""

    directory: Path
    port: int
    extra_conf: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = "127.0.0.1"

    @property
    def conf_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.extra_conf or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        # Run as root, Mosquitto would switch to its own user and could not read the test's private tmp folder.
        user = "user root\n" if os.geteuid() == 0 else ""
        if "persistence true" not in conf:
            conf += "persistence false\n"
        if "max_inflight_messages" not in conf:  # unlimited unless the test sets it (Receive Maximum in MQTT 5)
            conf += "\nmax_inflight_messages 0\n"
        if "max_queued_messages" not in conf:  # unlimited unless the test sets a limit
            conf += "max_queued_messages 0\n"
        self.conf_path.write_text(user + conf)
        with (self.directory / "mosquitto.log").open("ab") as log:
            self.process = subprocess.Popen([binary, "-c", str(self.conf_path)], stdout=log, stderr=log)
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def start_mosquitto(directory: Path, extra_conf: str = "", port: int | None = None) -> Broker:
    """Start Mosquitto; `extra_conf` replaces the default listener block (must name the port)."""
    broker = Broker(directory=directory, port=port or free_port(), extra_conf=extra_conf)
    broker.start()
    return broker
