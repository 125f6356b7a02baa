"""Modbus TCP polling: read the configured registers every poll interval, scale them, cut windows.

Registers of one table that lie close together are read in one request. A device that stops
answering (timeout, refused connection) raises SourceError naming the host, unit and registers, so
the runner marks source_up 0 and reconnects with backoff. An exception response (illegal address)
or a value that decodes to NaN skips that poll, counted in metrics.input_errors and logged.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.config import ModbusRegister, ModbusSourceConfig
from edge_agent.errors import DataError, RuntimeUnavailableError, SourceClosed, SourceError
from edge_agent.sources.base import Source
from edge_agent.sources.windowing import Windower
from edge_agent.tasks.base import Item

logger = logging.getLogger(__name__)

MAX_REGISTERS_PER_READ = 125  # the Modbus limit for one read request
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}


def _pymodbus() -> tuple[Any, Any]:
    try:
        from pymodbus.client import ModbusTcpClient
        from pymodbus.exceptions import ModbusException
    except ImportError as exc:
        raise RuntimeUnavailableError("the modbus source needs pymodbus: pip install 'pymodbus>=3.6,<4'") from exc
    return ModbusTcpClient, ModbusException


@dataclass(frozen=True)
class Block:
    """One read request: `count` registers of `table` from `start`, and the channels it serves."""

    table: str
    start: int
    count: int
    channels: tuple[int, ...]


def plan_reads(registers: list[ModbusRegister]) -> list[Block]:
    """Group registers of the same table into as few requests as the 125-register limit allows."""
    blocks: list[Block] = []
    for table in ("holding", "input"):
        members = sorted((r.address, i) for i, r in enumerate(registers) if r.table == table)
        current: list[int] = []
        start = end = 0
        for address, i in members:
            last = address + WIDTH[registers[i].dtype]
            if current and last - start <= MAX_REGISTERS_PER_READ:
                current.append(i)
                end = max(end, last)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [i], address, last
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks


def decode_register(words: list[int], register: ModbusRegister) -> float:
    """Raw 16-bit words (big-endian word order, the Modbus convention) -> scaled engineering value."""
    raw = b"".join(int(w).to_bytes(2, "big") for w in words)
    code = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}[register.dtype]
    value = float(np.frombuffer(raw, dtype=np.dtype(code))[0])
    if not math.isfinite(value):
        raise DataError(f"register {register.name!r} at {register.address} holds {value}")
    return value * register.scale + register.offset


class ModbusSource(Source):
    """Polls one Modbus TCP unit on a fixed schedule and emits windows of the scaled values."""

    kind = "modbus"
    keep_latest = False
    config: ModbusSourceConfig

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if self.window is None:
            raise SourceClosed(f"pipeline {self.name}: a modbus source needs a model with window params")
        if len(self.window.channels) != len(self.config.registers):
            raise SourceClosed(
                f"pipeline {self.name}: {len(self.config.registers)} registers configured but the model reads "
                f"{len(self.window.channels)} channels ({', '.join(self.window.channels)})"
            )
        self._windower = Windower(self.window, self.name)
        self._blocks = plan_reads(self.config.registers)
        self._client: Any = None
        self._next_poll = 0.0
        self._errors = 0

    def describe(self) -> str:
        c = self.config
        return f"modbus {c.host}:{c.port} unit {c.unit} every {c.poll_interval_s:g}s"

    def _where(self) -> str:
        return f"modbus {self.config.host}:{self.config.port} unit {self.config.unit}"

    def open(self) -> None:
        client_cls, _ = _pymodbus()
        c = self.config
        client = client_cls(c.host, port=c.port, timeout=c.timeout_s, retries=0, reconnect_delay=0)
        if not client.connect():
            client.close()
            raise SourceError(f"{self._where()}: cannot connect (no answer within {c.timeout_s:g} s)")
        self._client = client
        self._windower.reset()
        self._next_poll = time.monotonic()

    def read(self, timeout_s: float) -> Item | None:
        if self._client is None:
            raise SourceError(f"{self._where()}: not connected")
        wait = self._next_poll - time.monotonic()
        if wait > timeout_s:
            time.sleep(timeout_s)
            return None
        if wait > 0:
            time.sleep(wait)
        # A fixed schedule, not sleep(interval) after each poll, so slow answers do not stretch the sample rate.
        self._next_poll = max(self._next_poll + self.config.poll_interval_s, time.monotonic())
        try:
            values = self.poll()
        except DataError as exc:
            self._bad(exc)
            return None
        return self._windower.push(time.time(), values)

    def poll(self) -> np.ndarray:
        """One reading of every register, in channel order."""
        values = np.empty(len(self.config.registers), dtype=np.float32)
        for block in self._blocks:
            words = self._read_block(block)
            for i in block.channels:
                register = self.config.registers[i]
                offset = register.address - block.start
                values[i] = decode_register(words[offset : offset + WIDTH[register.dtype]], register)
        return values

    def _read_block(self, block: Block) -> list[int]:
        _, modbus_exception = _pymodbus()
        client = self._client
        reader = client.read_holding_registers if block.table == "holding" else client.read_input_registers
        span = f"{block.table} registers {block.start}-{block.start + block.count - 1}"
        try:
            response = reader(block.start, count=block.count, device_id=self.config.unit)
        except modbus_exception as exc:
            raise SourceError(f"{self._where()}: no answer reading {span}: {exc}") from exc
        if response.isError():
            raise DataError(f"{self._where()}: device refused reading {span}: {response}")
        words: list[int] = list(response.registers)
        if len(words) < block.count:
            raise DataError(f"{self._where()}: {span}: got {len(words)} registers, expected {block.count}")
        return words

    def _bad(self, exc: DataError) -> None:
        self._errors += 1
        self.metrics.input_errors.labels(self.name, "modbus_value").inc()
        if self._errors <= 10 or self._errors % 1000 == 0:
            logger.warning("%s: poll skipped: %s (%d bad so far)", self.name, exc, self._errors)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
