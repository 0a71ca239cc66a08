"""Billing periods of subscriptions kept without a provider (free ones): where a period ends.

A period of ``interval_count`` intervals ends that many days, weeks, months or years after it
starts. Months and years keep the subscription's anchor day (the day of the month it was
created on), clamped to the month's length, so a subscription created on January 31 renews on
February 28 (29) and then March 31 again, as Stripe's billing cycle anchor does, instead of
drifting to the 28th for ever. The time of day never changes.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from qzpay.catalog.models import Interval


def period_end(
    start: datetime, interval: Interval, interval_count: int, *, anchor_day: int
) -> datetime:
    """The end of the period that starts at ``start``."""
    if interval == "day":
        return start + timedelta(days=interval_count)
    if interval == "week":
        return start + timedelta(weeks=interval_count)
    months = interval_count * (12 if interval == "year" else 1)
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)
