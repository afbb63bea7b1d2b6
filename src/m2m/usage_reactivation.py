"""When a SIM the usage policy deactivated comes back, and whether it does (pure).

The policy deactivates a SIM for a period that reached its limit (a day or a month, the
account's, in its time zone); the SIM is due back when that period ends: the start of the next
one, the account's next midnight or first of the month. A SIM deactivated for both a day and
its month is back only when the later of them ends (the month): it is not due while any of its
deactivations still runs.

At that moment it is reactivated only if the account still asks for it, only if it is still
Deactivated, and only if nobody else changed it since: a SIM someone reactivated, deactivated or
terminated meanwhile is left as it is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from m2m.identifiers import SimState
from m2m.usage import Period


def next_period_start(period: Period, start: date) -> date:
    """The first day of the period after the one beginning on ``start``."""
    if period is Period.DAILY:
        return start + timedelta(days=1)
    return (start.replace(day=1) + timedelta(days=32)).replace(day=1)


def period_end(period: Period, start: date, zone: ZoneInfo) -> datetime:
    """The instant (UTC) the period beginning on ``start`` ends in ``zone``: midnight of the next
    period's first day there. Where a zone skips its midnight (clocks moved forward at 00:00),
    the day begins when the clocks jump, as the usage counted from then on belongs to it."""
    following = next_period_start(period, start)
    local = datetime(following.year, following.month, following.day, tzinfo=zone)
    return local.astimezone(UTC)


def should_reactivate(
    state: str | None, account_wants_it: bool, policy_changed_it_last: bool = True
) -> bool:
    """Whether a SIM whose deactivation period has ended gets a reactivation request: only
    while the account asks for it, only a SIM still Deactivated (None: gone), and only if the
    policy's deactivation is the last lifecycle request it had: a SIM the customer reactivated
    and then deactivated again (a stolen device) stays off."""
    return account_wants_it and state == SimState.DEACTIVATED.value and policy_changed_it_last


def worth_deactivating(period_ends_at: datetime, now: datetime, account_reactivates: bool) -> bool:
    """Whether a limit reached by late usage is acted on: not for a period already over when
    the account has its SIMs back at the period's end (it would be off for a moment, two
    requests and their status messages for nothing); its event is raised all the same."""
    return not (account_reactivates and period_ends_at <= now)
