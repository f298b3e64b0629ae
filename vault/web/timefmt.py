"""Times as owners read them: in VAULT_TIMEZONE, always labelled with the zone, relative when that reads better."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup

from vault.web import i18n
from vault.web.i18n import N_

# zones that keep Beijing time all year; their label is the name people use for it
BEIJING_TIME = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "Asia/Urumqi", "PRC"})
CHINA_STANDARD_TIME = N_("China Standard Time")
JUST_NOW = N_("just now")
RELATIVE_WITHIN = timedelta(hours=24)  # beyond a day, a date and time read better than "31 hours ago"


def zone_label(zone: str, lang: str) -> str:
    """What follows a time on a page: 北京时间 / China Standard Time, else the zone's own name."""
    if zone in BEIJING_TIME:
        return i18n.translations(lang).gettext(CHINA_STANDARD_TIME)
    return zone


@dataclass(frozen=True)
class Clockface:
    """Formats times for one page: one language, one zone, one 'now'."""

    lang: str
    zone: str
    now: datetime

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def label(self) -> str:
        return zone_label(self.zone, self.lang)

    def local(self, moment: datetime) -> datetime:
        return _aware(moment).astimezone(self.tz)

    def absolute(self, moment: datetime) -> str:
        """2026-11-30 10:58 北京时间"""
        return f"{self.local(moment).strftime('%Y-%m-%d %H:%M')} {self.label}"

    def relative(self, moment: datetime) -> str | None:
        """'3 分钟前' / 'in 5 minutes' within a day of now, else None."""
        delta = _aware(moment) - self.now
        if abs(delta) >= RELATIVE_WITHIN:
            return None
        t = i18n.translations(self.lang)
        seconds = int(abs(delta).total_seconds())
        if seconds < 60:
            return t.gettext(JUST_NOW)
        minutes, hours = seconds // 60, seconds // 3600
        if delta < timedelta(0):
            if hours:
                return t.ngettext("%(num)d hour ago", "%(num)d hours ago", hours) % {"num": hours}
            return t.ngettext("%(num)d minute ago", "%(num)d minutes ago", minutes) % {"num": minutes}
        if hours:
            return t.ngettext("in %(num)d hour", "in %(num)d hours", hours) % {"num": hours}
        return t.ngettext("in %(num)d minute", "in %(num)d minutes", minutes) % {"num": minutes}

    def when(self, moment: datetime) -> Markup:
        """A <time> element: relative within a day (the exact time as its tooltip), else the labelled time."""
        absolute = self.absolute(moment)
        shown = self.relative(moment) or absolute
        iso = _aware(moment).isoformat(timespec="seconds")
        return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, absolute, shown)

    def day(self, moment: datetime | date) -> str:
        """The calendar day in the owner's zone (a date needs no zone label)."""
        if isinstance(moment, datetime):
            return self.local(moment).date().isoformat()
        return moment.isoformat()

    def midnight(self, day: date) -> datetime:
        """The start of `day` in the owner's zone, as UTC."""
        return datetime.combine(day, time.min, tzinfo=self.tz).astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite hands datetimes back naive; the vault stores UTC everywhere
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
