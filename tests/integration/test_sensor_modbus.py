"""The Modbus TCP source against pymodbus's own server on a loopback port: scaling, a silent device, recovery."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.backoff import Backoff
from edge_agent.config import ModbusSourceConfig
from edge_agent.errors import SourceError
from edge_agent.metrics import AgentMetrics
from edge_agent.sources.modbus import ModbusSource
from edge_agent.sources.runner import Handover, SourceRunner
from edge_agent.sources.windowing import WindowSpec
from tests.support.broker import free_port

# float32 41.5 is 0x4226 0x0000 in big-endian word order
REGISTERS = [1234, 65436, 0x4226, 0x0000, 0, 0, 0, 0, 0, 0]


class Device:
    """A pymodbus TCP server in its own thread and event loop; `silent` makes it stop answering."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.silent = False
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _action(self, *_args: Any) -> None:
        while self.silent:  # hold the request: the client sees a device that no longer answers
            await asyncio.sleep(0.05)

    async def _serve(self) -> None:
        device = SimDevice(
            id=1, simdata=[SimData(0, values=list(REGISTERS), datatype=DataType.REGISTERS)], action=self._action
        )
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        self._ready.set()
        await self._server.serve_forever()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            probe = ModbusTcpClient("127.0.0.1", port=self.port, timeout=1, retries=0)
            if probe.connect():
                probe.close()
                return
            time.sleep(0.05)
        raise TimeoutError("pymodbus server did not start")

    def stop(self) -> None:
        self.silent = False
        asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def device() -> Iterator[Device]:
    dev = Device(free_port())
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()


def make_config(port: int, **extra: Any) -> ModbusSourceConfig:
    registers = [
        {"name": "current", "address": 0, "dtype": "int16", "scale": 0.01},
        {"name": "pressure", "address": 1, "dtype": "int16", "scale": 0.001, "offset": 1.0},
        {"name": "temperature", "address": 2, "dtype": "float32"},
    ]
    return ModbusSourceConfig.model_validate(
        {"kind": "modbus", "host": "127.0.0.1", "port": port, "registers": registers, "poll_interval_s": 0.02} | extra
    )


WINDOW = WindowSpec(size=3, stride=1, channels=("current", "pressure", "temperature"))


def test_polls_scale_registers_into_windows(device: Device) -> None:
    source = ModbusSource("press", make_config(device.port), WINDOW, AgentMetrics(CollectorRegistry()))
    source.open()
    try:
        item = None
        for _ in range(20):
            item = source.read(timeout_s=0.5)
            if item is not None:
                break
    finally:
        source.close()
    assert item is not None
    assert item.data.shape == (3, 3)
    assert item.data[-1].tolist() == pytest.approx([12.34, 1.0 - 0.1, 41.5], rel=1e-5)
    assert item.meta["window_end"] > item.meta["window_start"]


def test_illegal_register_is_counted_and_skipped(device: Device, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    config = make_config(device.port)
    bad = config.model_copy(
        update={"registers": [*config.registers[:2], config.registers[2].model_copy(update={"address": 500})]}
    )
    source = ModbusSource("press", bad, WINDOW, AgentMetrics(registry))
    source.open()
    try:
        with caplog.at_level(logging.WARNING, logger="edge_agent.sources.modbus"):
            assert all(source.read(timeout_s=0.1) is None for _ in range(3))
    finally:
        source.close()
    errors = registry.get_sample_value("edge_input_errors_total", {"pipeline": "press", "reason": "modbus_value"})
    assert errors is not None and errors >= 1
    assert "device refused reading holding registers 500-501" in caplog.text


def test_silent_device_is_a_clear_error(device: Device) -> None:
    source = ModbusSource("press", make_config(device.port, timeout_s=0.3), WINDOW, AgentMetrics(CollectorRegistry()))
    source.open()
    device.silent = True
    try:
        with pytest.raises(
            SourceError, match=r"modbus 127\.0\.0\.1:\d+ unit 1: no answer reading holding registers 0-3"
        ):
            for _ in range(20):
                source.read(timeout_s=0.5)
    finally:
        source.close()


def test_runner_marks_source_down_and_recovers(device: Device, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    source = ModbusSource("press", make_config(device.port, timeout_s=0.3), WINDOW, metrics)
    handover = Handover(capacity=1000, keep_latest=False)
    runner = SourceRunner(source, handover, metrics, Backoff(0.05, 0.2))

    def up() -> float | None:
        return registry.get_sample_value("edge_source_up", {"pipeline": "press"})

    def wait_for(check: Any, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.02)
        raise AssertionError("condition not reached")

    with caplog.at_level(logging.WARNING, logger="edge_agent.sources.runner"):
        runner.start()
        try:
            wait_for(lambda: len(handover.take(1000, 0.1)) > 0)
            device.silent = True
            wait_for(lambda: up() == 0)
            assert "no answer reading holding registers" in caplog.text
            device.silent = False
            handover.take(1000, 0.0)
            wait_for(lambda: up() == 1 and len(handover.take(1000, 0.1)) > 0)
        finally:
            runner.stop()
            runner.join(5)
    reconnects = registry.get_sample_value("edge_source_reconnects_total", {"pipeline": "press"})
    assert reconnects is not None and reconnects >= 1
