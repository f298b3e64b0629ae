"""Times on the pages: in the owner's zone, labelled, relative within a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from vault.web.timefmt import Clockface

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # 11:00 in Beijing


def test_a_time_is_shown_in_beijing_time_and_says_so() -> None:
    # protection removed to see this fail: the astimezone(self.tz) in Clockface.local
    face = Clockface("zh", "Asia/Shanghai", NOW)
    assert face.absolute(NOW - timedelta(days=2)) == "2026-11-28 11:00 北京时间"
    assert Clockface("en", "Asia/Shanghai", NOW).absolute(NOW) == "2026-11-30 11:00 China Standard Time"


def test_another_zone_is_named() -> None:
    assert Clockface("en", "Europe/Berlin", NOW).absolute(NOW) == "2026-11-30 04:00 Europe/Berlin"


def test_a_naive_time_from_sqlite_is_read_as_utc() -> None:
    assert Clockface("zh", "Asia/Shanghai", NOW).absolute(NOW.replace(tzinfo=None)) == "2026-11-30 11:00 北京时间"


def test_within_a_day_the_time_is_relative_with_the_exact_time_as_its_title() -> None:
    zh, en = Clockface("zh", "Asia/Shanghai", NOW), Clockface("en", "Asia/Shanghai", NOW)
    assert zh.relative(NOW - timedelta(minutes=3)) == "3 分钟前"
    assert en.relative(NOW - timedelta(minutes=1)) == "1 minute ago"
    assert en.relative(NOW - timedelta(hours=5)) == "5 hours ago"
    assert zh.relative(NOW + timedelta(minutes=9, seconds=30)) == "9 分钟后"
    assert zh.relative(NOW - timedelta(seconds=5)) == "刚刚"
    assert zh.relative(NOW - timedelta(days=2)) is None
    html = str(zh.when(NOW - timedelta(minutes=3)))
    assert 'title="2026-11-30 10:57 北京时间"' in html and ">3 分钟前</time>" in html
    assert "北京时间</time>" in str(zh.when(NOW - timedelta(days=3)))


def test_a_day_and_its_midnight_are_the_owners() -> None:
    face = Clockface("zh", "Asia/Shanghai", NOW)
    assert face.day(datetime(2026, 11, 29, 17, 0, tzinfo=UTC)) == "2026-11-30"  # 01:00 the next day in Beijing
    assert face.midnight(date(2026, 11, 30)) == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
