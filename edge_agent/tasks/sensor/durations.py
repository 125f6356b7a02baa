"""Durations written as people write them (`90s`, `20m`, `1.5h`, `1d`, or plain seconds) and their conversion."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86_400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|min|m|h|d)?\s*$", re.IGNORECASE)


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string such as `20m`; ValueError names the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a duration; write seconds or a number with ms, s, m, h or d (20m)")
        seconds = float(match.group(1)) * UNITS[(match.group(2) or "s").lower()]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A config field holding a duration: YAML may say `10m` or `600`; the model holds seconds."""


def format_duration(seconds: float) -> str:
    """`20m`, `1.5h`, `45s`: the largest unit that keeps the figure short."""
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


def samples_for(value: str, period_s: float, what: str) -> int:
    """A count of samples from `12` (samples) or `20m` (time, resolved with the measured sample period)."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    seconds = parse_duration(text)
    if period_s <= 0:
        raise ValueError(f"{what} {value!r} is a time, but the data's sample period is unknown; give samples")
    return max(1, round(seconds / period_s))
