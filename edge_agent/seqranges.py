"""Inclusive seq ranges ``(first, last)``: what cmd/resend asks for and what a device reports it no longer holds.

Shared by the device (which replays ranges from its delivered archive) and roi_service (which finds gaps).
"""

from __future__ import annotations

from collections.abc import Iterable

SeqRange = tuple[int, int]


def to_ranges(seqs: Iterable[int]) -> list[SeqRange]:
    """Collapse seq numbers (any order, duplicates allowed) into sorted inclusive ranges."""
    out: list[SeqRange] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def missing(span: SeqRange, held: Iterable[int]) -> list[SeqRange]:
    """The parts of `span` not covered by the `held` seqs."""
    first, last = span
    gaps: list[SeqRange] = []
    cursor = first
    for seq in sorted({s for s in held if first <= s <= last}):
        if seq > cursor:
            gaps.append((cursor, seq - 1))
        cursor = seq + 1
    if cursor <= last:
        gaps.append((cursor, last))
    return gaps


def size(ranges: Iterable[SeqRange]) -> int:
    return sum(last - first + 1 for first, last in ranges)


def clip(ranges: Iterable[SeqRange], highest: int, budget: int) -> list[SeqRange]:
    """Ranges limited to 1..highest and to `budget` seqs in all (the rest is asked for again later)."""
    out: list[SeqRange] = []
    for start, end in sorted(ranges):
        first, last = max(start, 1), min(end, highest)
        if first > last or budget <= 0:
            continue
        last = min(last, first + budget - 1)
        out.append((first, last))
        budget -= last - first + 1
    return out


def subtract(span: SeqRange, covered: Iterable[SeqRange]) -> list[SeqRange]:
    """The parts of `span` outside every `covered` range."""
    first, last = span
    out: list[SeqRange] = []
    cursor = first
    for a, b in sorted(covered):
        if b < cursor or a > last:
            continue
        if a > cursor:
            out.append((cursor, a - 1))
        cursor = max(cursor, b + 1)
        if cursor > last:
            return out
    if cursor <= last:
        out.append((cursor, last))
    return out
