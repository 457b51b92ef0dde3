"""The one exception type users see: a one-line message naming the thing and the cause.

The CLI prints it without a traceback and exits non-zero; everything else is a bug.
"""


class SwarmctlError(Exception):
    """An error caused by input or by the environment, reported as one line."""

    exit_code = 1


ECHO_LIMIT = 80


def cut(value: str, limit: int = ECHO_LIMIT) -> str:
    """`value` shortened for an error message, so a huge input is not echoed whole."""
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value)} characters)"
