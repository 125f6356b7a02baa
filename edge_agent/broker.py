"""An embedded MQTT broker (amqtt) on loopback, for the demo only: production configs name a real broker."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

from edge_agent.errors import EdgeAgentError

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """amqtt in a background event loop, bound to 127.0.0.1 only, anonymous (it never leaves the machine)."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="embedded-broker", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise EdgeAgentError(f"the embedded broker did not start on {self.host}:{self.port}: {self._error}")
        logger.info("embedded MQTT broker (amqtt) listening on %s:%d: for the demo only", self.host, self.port)

    def _serve(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            self._error = exc
            self._ready.set()
            return
        asyncio.set_event_loop(self._loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        try:
            self._broker = Broker(config, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
        except Exception as exc:  # noqa: BLE001 - reported to the caller of start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._broker is not None and self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                future.result(timeout=5)
            except Exception:  # noqa: BLE001 - best effort at exit
                logger.debug("embedded broker shutdown was not clean")
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
