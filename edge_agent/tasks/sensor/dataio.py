"""Reading and writing multichannel sensor CSV files (fit input, synthetic data, benchmarks)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_agent.errors import DataError

TIMESTAMP_COLUMNS = ("timestamp", "datetime", "time", "ts")
LABEL_COLUMNS = ("anomaly", "changepoint", "fault", "label")


@dataclass
class SensorTable:
    """Samples in file order: epoch-second timestamps, values (rows x channels), optional 0/1 labels."""

    timestamps: np.ndarray
    values: np.ndarray
    channels: list[str]
    labels: np.ndarray | None = None
    faults: list[str] | None = None


def parse_time(text: str) -> float:
    """Epoch seconds from epoch numbers or ISO-8601 (also `YYYY-MM-DD hh:mm:ss`; naive times are UTC)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DataError(f"timestamp {text!r} is neither epoch seconds nor ISO-8601") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _delimiter(first_line: str) -> str:
    return max((",", ";", "\t", "|"), key=first_line.count)


def _columns(header: list[str], channels: Sequence[str] | None, timestamp: str | None, path: Path) -> tuple[int, ...]:
    names = [h.strip() for h in header]
    ts_name = timestamp or next((n for n in names if n.lower() in TIMESTAMP_COLUMNS), None)
    if ts_name is None or ts_name not in names:
        raise DataError(f"{path}: no timestamp column (looked for {timestamp or ', '.join(TIMESTAMP_COLUMNS)})")
    if channels is None:
        channels = [n for n in names if n != ts_name and n.lower() not in LABEL_COLUMNS]
    missing = [c for c in channels if c not in names]
    if missing:
        raise DataError(f"{path}: column(s) {', '.join(missing)} not in the header ({', '.join(names)})")
    if not channels:
        raise DataError(f"{path}: no channel columns besides the timestamp")
    return (names.index(ts_name), *(names.index(c) for c in channels))


def read_sensor_csv(
    path: Path, channels: Sequence[str] | None = None, timestamp_column: str | None = None
) -> SensorTable:
    """Read a header-row CSV; channels default to every column except the timestamp and label columns."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        first = handle.readline()
        handle.seek(0)
        reader = csv.reader(handle, delimiter=_delimiter(first))
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: empty file")
        names = [h.strip() for h in header]
        index = _columns(names, channels, timestamp_column, path)
        label_at = names.index("anomaly") if "anomaly" in names else None
        times, rows, labels = [], [], []
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            try:
                times.append(parse_time(row[index[0]]))
                rows.append([float(row[i]) for i in index[1:]])
                if label_at is not None:
                    labels.append(int(float(row[label_at])))
            except (IndexError, ValueError, DataError) as exc:
                raise DataError(f"{path}:{line}: expected a timestamp and {len(index) - 1} numbers ({exc})") from exc
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(index) - 1)
    if not np.all(np.isfinite(values)):
        bad = int(np.argwhere(~np.isfinite(values))[0][0]) + 2
        raise DataError(f"{path}:{bad}: channel values must be finite numbers")
    return SensorTable(
        timestamps=np.asarray(times, dtype=np.float64),
        values=values,
        channels=[names[i] for i in index[1:]],
        labels=np.asarray(labels, dtype=np.int8) if label_at is not None else None,
    )


def write_sensor_csv(path: Path, table: SensorTable, decimals: int = 4) -> Path:
    """Write timestamp (ISO-8601 UTC), the channels, and anomaly/fault columns when the table has labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        extra = ["anomaly", "fault"] if table.labels is not None else []
        writer.writerow(["timestamp", *table.channels, *extra])
        for i, ts in enumerate(table.timestamps):
            stamp = datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            row = [stamp, *(f"{v:.{decimals}f}" for v in table.values[i])]
            if table.labels is not None:
                row += [str(int(table.labels[i])), table.faults[i] if table.faults else ""]
            writer.writerow(row)
    return path
