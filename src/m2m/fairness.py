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
    while open_ and left:
        level = left // len(open_)
        # Those allowed no more than the level take all they may; the others share the rest.
        capped = [
            i for i in open_ if (allowance := allowances[i]) is not None and allowance <= level
        ]
        if not capped:
            extra = left - level * len(open_)
            for position, i in enumerate(open_):
                quotas[i] = level + (1 if position < extra else 0)
            break
        for i in capped:
            quotas[i] = allowances[i] or 0
            left -= quotas[i]
        open_ = [i for i in open_ if i not in capped]
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
    total: int, got: Sequence[int], more: Sequence[bool], allowances: Sequence[int | None]
) -> list[int] | None:
    """After reading each queue up to its quota and getting ``got``: larger quotas to read again
    with, sharing the places nobody took among the queues that may hold more (``more``: they
    filled their quota), each within its allowance, so that the totals come out as level as
    they can; None when nothing is left to share or nobody may take it."""
    left = total - sum(got)
    takers = [i for i, may in enumerate(more) if may]
    if left <= 0 or not takers:
        return None
    pool = left + sum(got[i] for i in takers)
    level = shares(pool, [allowances[i] for i in takers])
    quotas = list(got)
    for i, share in zip(takers, level, strict=True):
        quotas[i] = max(got[i], share)
    return None if quotas == list(got) else quotas


def nested_top_up(
    total: int, got: Sequence[Sequence[int]], more: Sequence[Sequence[bool]]
) -> list[list[int]] | None:
    """``top_up`` in two levels, without allowances: the places left across the groups that may
    hold more, then each group's new part across its members that may."""
    group_quotas = top_up(total, [sum(g) for g in got], [any(m) for m in more], [None] * len(got))
    if group_quotas is None:
        return None
    return [
        top_up(part, members_got, members_more, [None] * len(members_got)) or list(members_got)
        for part, members_got, members_more in zip(group_quotas, got, more, strict=True)
    ]


def interleave(queues: Sequence[Sequence[K]]) -> list[K]:
    """Round-robin: the first of each queue in order, then the second of each, and so on."""
    merged: list[K] = []
    depth = max((len(queue) for queue in queues), default=0)
    for level in range(depth):
        merged.extend(queue[level] for queue in queues if level < len(queue))
    return merged
