"""Time as the state file stores it (UTC, ISO 8601) and as people read it (pure)."""

from datetime import UTC, datetime


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
