"""Time as the state file stores it (UTC, ISO 8601) and as people read it (pure)."""

import re
from datetime import UTC, datetime

DOCKER_TIME = re.compile(r"^([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def from_docker(stamp: str | int | None) -> str:
    """docker's time (RFC 3339 with nanoseconds, or Unix seconds from the API's list) as
    the state file stores it; "" for docker's zero time ("0001-01-01T00:00:00Z") or none."""
    if not stamp:
        return ""
    if isinstance(stamp, int):
        when = datetime.fromtimestamp(stamp, UTC)
    else:
        match = DOCKER_TIME.match(stamp)
        if match is None or stamp.startswith("0001-"):
            return ""
        whole, fraction, zone = match.groups()
        # Python reads at most microseconds; docker writes nanoseconds.
        micro = f".{fraction[:6]}" if fraction else ""
        when = datetime.fromisoformat(whole + micro + ("+00:00" if zone == "Z" else zone))
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def seconds_since(stamp: str, at: datetime | None = None) -> float:
    return ((at or datetime.now(UTC)) - parse(stamp)).total_seconds()


def human_duration(seconds: float) -> str:
    """Docker's wording: "Less than a second", "About a minute", "5 minutes", "2 days"…"""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def ago(stamp: str, at: datetime | None = None) -> str:
    return human_duration(max(0.0, seconds_since(stamp, at))) + " ago"
