"""Sharing one batch of work fairly between tenants: a rotating order, fair shares, round-robin.
Pure.

The worker's two claims are built on it. An item claim shares its batch across the accounts
with open requests, and each account's share across its open requests; a delivery claim shares
its free slots across the accounts with due messages, each up to what it may still hold in flight.
The claims read each queue's head up to its share (an index range read), top up the queues that
had more from what the others left (work-conserving: a lone tenant still gets the whole batch),
and interleave the heads. The order of the queues rotates from claim to claim, so the remainder of
an uneven split, or the queues beyond the batch when there are more queues than places, go to a
different tenant each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

K = TypeVar("K")


def rotated(keys: Sequence[int], first_after: int | None) -> list[int]:
    """``keys`` (ascending) starting with the first one after ``first_after``, then wrapping
    around; as they are when ``first_after`` is None."""
    if first_after is None:
        return list(keys)
    for index, candidate in enumerate(keys):
        if candidate > first_after:
            return [*keys[index:], *keys[:index]]
    return list(keys)


def shares(total: int, allowances: Sequence[int | None]) -> list[int]:
    """Split ``total`` places as equally as possible, none above its allowance (None: no limit);
    what one cannot take goes to the others, and the remainder of an uneven split to the first
    ones in order. The sum is ``total``, or the sum of the allowances when that is less."""
    quotas = [0] * len(allowances)
    left = max(total, 0)
    open_ = [i for i, allowance in enumerate(allowances) if allowance is None or allowance > 0]
    while left and open_:
        each, extra = divmod(left, len(open_))
        still_open = []
        for position, i in enumerate(open_):
            want = each + (1 if position < extra else 0)
            allowance = allowances[i]
            room = want if allowance is None else min(want, allowance - quotas[i])
            quotas[i] += room
            left -= room
            if allowance is None or quotas[i] < allowance:
                still_open.append(i)
        open_ = still_open
    return quotas


def nested_shares(total: int, groups: Sequence[Sequence[int | None]]) -> list[list[int]]:
    """``shares`` in two levels: ``total`` across the groups (each allowed the sum of its
    members' allowances), then each group's part across its members."""
    group_allowances: list[int | None] = [
        None if any(a is None for a in members) else sum(a or 0 for a in members)
        for members in groups
    ]
    return [
        shares(part, members)
        for part, members in zip(shares(total, group_allowances), groups, strict=True)
    ]


def top_up(
    total: int, quotas: Sequence[int], got: Sequence[int], allowances: Sequence[int | None]
) -> list[int] | None:
    """After reading each queue up to its quota and getting ``got``: the larger quotas to read
    again with, giving the places nobody took to the queues that filled their quota (they may
    hold more), each still within its allowance; None when there is nothing to top up."""
    left = total - sum(got)
    room = [
        (None if a is None else a - g) if g >= q > 0 else 0
        for q, g, a in zip(quotas, got, allowances, strict=True)
    ]
    if left <= 0 or not any(r is None or r > 0 for r in room):
        return None
    extra = shares(left, room)
    if not any(extra):
        return None
    return [g + e for g, e in zip(got, extra, strict=True)]


def interleave(queues: Sequence[Sequence[K]]) -> list[K]:
    """Round-robin: the first of each queue in order, then the second of each, and so on."""
    merged: list[K] = []
    depth = max((len(queue) for queue in queues), default=0)
    for level in range(depth):
        merged.extend(queue[level] for queue in queues if level < len(queue))
    return merged
