"""Billing periods: calendar-aligned or anchored on the subscription date.

Lago works in the customer's timezone; the emulator uses UTC for everyone, so
its boundaries match a Lago customer whose timezone is UTC (Lago's default).
A period is the half-open range ``[start, end)``; Lago shows its end as the
last second before ``end`` (``end_of_day`` of the last day).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

_MONTHS = {"monthly": 1, "quarterly": 3, "semiannual": 6, "yearly": 12}


@dataclass(frozen=True)
class Period:
    """A billing period ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @property
    def last_second(self) -> datetime:
        """What Lago shows as the period end: one second before ``end``."""
        return self.end - timedelta(seconds=1)


def current_period(
    interval: str, billing_time: str, anchor: datetime, now: datetime
) -> Period:
    """The period of a subscription that contains ``now``.

    ``anchor`` is the subscription start; ``billing_time`` is ``calendar`` or
    ``anniversary``. A calendar subscription started inside the period is
    counted from the start of its first day, as Lago does.
    """
    day = now.astimezone(timezone.utc).date()
    anchor_day = anchor.astimezone(timezone.utc).date()
    if interval == "weekly":
        first, last = _weeks(billing_time, anchor_day, day)
    else:
        months = _MONTHS.get(interval, 1)
        if billing_time == "anniversary":
            first, last = _anniversary_months(months, anchor_day, day)
        else:
            first, last = _calendar_months(months, day)
    start = max(_midnight(first), _midnight(anchor_day))
    return Period(start=start, end=_midnight(last))


def _weeks(billing_time: str, anchor_day: date, day: date) -> tuple[date, date]:
    if billing_time == "anniversary":
        elapsed_weeks = max((day - anchor_day).days, 0) // 7
        first = anchor_day + timedelta(days=7 * elapsed_weeks)
    else:
        first = day - timedelta(days=day.weekday())
    return first, first + timedelta(days=7)


def _calendar_months(months: int, day: date) -> tuple[date, date]:
    month = ((day.month - 1) // months) * months + 1
    first = date(day.year, month, 1)
    return first, add_months(first, months, first.day)


def _anniversary_months(months: int, anchor: date, day: date) -> tuple[date, date]:
    elapsed_months = (day.year - anchor.year) * 12 + day.month - anchor.month
    count = max(elapsed_months // months, 0)
    first = add_months(anchor, count * months, anchor.day)
    if first > day and count > 0:
        count -= 1
        first = add_months(anchor, count * months, anchor.day)
    return first, add_months(anchor, (count + 1) * months, anchor.day)


def add_months(start: date, months: int, wanted_day: int) -> date:
    """``start`` moved by ``months``, on ``wanted_day`` or the month's last day."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(wanted_day, last_day))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)
