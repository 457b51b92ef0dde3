"""Running local programs: argv lists only, stderr folded into one-line errors."""

import os
import shlex
import subprocess

from swarmctl.errors import SwarmctlError


def run(
    argv: list[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 60,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv and return the result; on failure raise a one-line SwarmctlError."""
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, input=input, timeout=timeout, cwd=cwd
        )
    except FileNotFoundError as exc:
        raise SwarmctlError(f"{argv[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise SwarmctlError(f"{shlex.join(argv)}: timed out after {timeout:g} s") from exc
    if check and result.returncode != 0:
        detail = last_line(result.stderr) or last_line(result.stdout) or f"exit {result.returncode}"
        raise SwarmctlError(f"{shlex.join(argv)}: {detail}")
    return result


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
