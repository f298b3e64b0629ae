"""Quiet hours in the owner's zone: when a message held back by them may go out."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"
MINUTES_A_DAY = 24 * 60


def parse_hhmm(value: str) -> int:
    """ "22:30" -> minutes after midnight; ValueError for anything that is not HH:MM on a 24-hour clock."""
    hours, sep, minutes = value.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError("expected HH:MM")
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError("expected HH:MM on a 24-hour clock")
    return h * 60 + m


def format_hhmm(minutes: int | None) -> str:
    return "" if minutes is None else f"{minutes // 60:02d}:{minutes % 60:02d}"


def release_time(at: datetime, start: int | None, end: int | None, zone: ZoneInfo) -> datetime:
    """`at` itself outside quiet hours [start, end) (local minutes, may span midnight), else the end of them."""
    if start is None or end is None or start == end:
        return at
    local = at.astimezone(zone)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return at
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    release = midnight + timedelta(minutes=end)
    if release <= local:
        release += timedelta(days=1)
    # rebuild through the zone so a change of UTC offset on the way is applied
    naive = release.replace(tzinfo=None)
    return naive.replace(tzinfo=zone).astimezone(at.tzinfo)
