"""Quiet hours in the owner's zone (Asia/Shanghai by default, UTC+8 without summer time)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from vault.notifications.quiet import format_hhmm, parse_hhmm, release_time

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_hhmm_round_trips_and_refuses_what_is_not_a_time() -> None:
    assert parse_hhmm("22:30") == 22 * 60 + 30 and format_hhmm(parse_hhmm("07:05")) == "07:05"
    for bad in ("24:00", "7:00", "07-00", "ab:cd", "07:60", ""):
        with pytest.raises(ValueError):
            parse_hhmm(bad)


def test_a_message_in_quiet_hours_spanning_midnight_waits_for_their_end_in_the_owners_zone() -> None:
    quiet = (parse_hhmm("22:00"), parse_hhmm("07:00"))
    at = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    assert release_time(at, *quiet, SHANGHAI) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # 07:00 next day there
    early = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # 05:00 on 1 December in Shanghai
    assert release_time(early, *quiet, SHANGHAI) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def test_outside_quiet_hours_or_without_them_a_message_goes_at_once() -> None:
    at = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # noon in Shanghai
    assert release_time(at, parse_hhmm("22:00"), parse_hhmm("07:00"), SHANGHAI) == at
    assert release_time(at, None, None, SHANGHAI) == at


def test_the_zone_decides_not_the_servers_clock() -> None:
    at = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 23:30 UTC but 07:30 in Shanghai: already past the end
    assert release_time(at, parse_hhmm("22:00"), parse_hhmm("07:00"), SHANGHAI) == at
    assert release_time(at, parse_hhmm("22:00"), parse_hhmm("07:00"), ZoneInfo("UTC")) != at
