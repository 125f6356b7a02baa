"""Replay of a timestamped multichannel sensor CSV, paced by its timestamps times a speed factor."""

from __future__ import annotations

import csv
import io
import logging
import time
from typing import Any

import numpy as np

from edge_agent.config import CsvSourceConfig
from edge_agent.errors import DataError, SourceClosed, SourceError
from edge_agent.sources.base import Source
from edge_agent.sources.windowing import Windower
from edge_agent.tasks.base import Item
from edge_agent.tasks.sensor.dataio import parse_time

logger = logging.getLogger(__name__)


class CsvReplaySource(Source):
    """Windows of samples, in file order. A malformed row is skipped, counted and logged with its line."""

    kind = "csv"
    keep_latest = False
    config: CsvSourceConfig

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if self.window is None:
            raise SourceError(f"pipeline {self.name}: a csv source needs a model with window and channels params")
        self._windower = Windower(self.window, self.name)
        self._handle: io.TextIOWrapper | None = None
        self._reader: Any = None
        self._line = 0
        self._resume_line = 0
        self._columns: list[int] = []
        self._ts_column = 0
        self._pace: tuple[float, float] | None = None
        self._bad_rows = 0

    def describe(self) -> str:
        return f"csv {self.config.path} x{self.config.speed:g}"

    def open(self) -> None:
        path = self.config.path
        try:
            handle = path.open(newline="", encoding="utf-8")
        except OSError as exc:
            raise SourceError(f"cannot open {path}: {exc.strerror}") from exc
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = self.config.delimiter or _sniff_delimiter(sample)
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            handle.close()
            raise SourceClosed(f"{path} is empty")
        self._bind_columns([h.strip() for h in header], path.name)
        self._handle, self._reader, self._line = handle, reader, 1
        for _ in range(max(0, self._resume_line - 1)):  # continue where a lost file left off
            next(reader, None)
            self._line += 1
        self._windower.reset()
        self._pace = None

    def _bind_columns(self, header: list[str], filename: str) -> None:
        assert self.window is not None
        wanted = self.config.channels or list(self.window.channels)
        missing = [c for c in [self.config.timestamp_column, *wanted] if c not in header]
        if missing:
            raise SourceClosed(
                f"{filename}: column(s) {', '.join(missing)} not in the header ({', '.join(header)}); "
                "set timestamp_column / channels in the source config"
            )
        self._ts_column = header.index(self.config.timestamp_column)
        self._columns = [header.index(c) for c in wanted]

    def read(self, timeout_s: float) -> Item | None:
        if self._reader is None:
            raise SourceError("csv source is not open")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            row = self._next_row()
            if row is None:
                return None
            try:
                ts, values = self._parse(row)
            except DataError as exc:
                self._bad_row(exc)
                continue
            self._wait_for(ts)
            item = self._windower.push(ts, values, {"line": self._line})
            if item is not None:
                return item
        return None

    def _next_row(self) -> list[str] | None:
        try:
            row: list[str] | None = next(self._reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            self._line += 1
            self._bad_row(DataError(str(exc)))
            return None
        if row is None:
            self._at_end()
            return None
        self._line += 1
        self._resume_line = self._line
        return row

    def _at_end(self) -> None:
        if not self.config.path.exists():
            raise SourceError(f"{self.config.path} disappeared")
        if not self.config.loop:
            raise SourceClosed(f"end of {self.config.path} ({self._line} lines, {self._bad_rows} malformed)")
        self._resume_line = 0
        self.close()
        self.open()

    def _parse(self, row: list[str]) -> tuple[float, np.ndarray]:
        if not row or all(not cell.strip() for cell in row):
            raise DataError("empty row")
        try:
            ts = parse_time(row[self._ts_column])
            values = np.array([float(row[i]) for i in self._columns], dtype=np.float32)
        except (IndexError, ValueError) as exc:
            raise DataError(f"expected {len(self._columns)} numeric channel values: {exc}") from exc
        if not np.all(np.isfinite(values)):
            raise DataError("channel values must be finite numbers")
        return ts, values

    def _bad_row(self, exc: DataError) -> None:
        self._bad_rows += 1
        self.metrics.input_errors.labels(self.name, "malformed_row").inc()
        # One line per malformed row up to 10, then every 1000th, so a broken file cannot flood the log.
        if self._bad_rows <= 10 or self._bad_rows % 1000 == 0:
            logger.warning(
                "%s line %d skipped: %s (%d malformed so far)", self.config.path, self._line, exc, self._bad_rows
            )

    def _wait_for(self, ts: float) -> None:
        if self.config.speed <= 0:
            return
        if self._pace is None:
            self._pace = (ts, time.monotonic())
            return
        due = self._pace[1] + (ts - self._pace[0]) / self.config.speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 5.0))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle, self._reader = None, None


def _sniff_delimiter(sample: str) -> str:
    first = sample.splitlines()[0] if sample else ""
    return max((",", ";", "\t", "|"), key=first.count)
