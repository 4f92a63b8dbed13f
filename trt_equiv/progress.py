"""Progress lines for long steps (conversion, calibration, engine builds, benchmark sweeps).

Printed to stderr only when it is a terminal, so CI logs and piped output stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def interactive() -> bool:
    return sys.stderr.isatty()


@contextmanager
def step(what: str) -> Iterator[None]:
    """``with step("converting SavedModel → ONNX"):`` prints the step and its duration on a TTY."""
    if not interactive():
        yield
        return
    start = time.perf_counter()
    print(f"… {what}", file=sys.stderr, flush=True)
    try:
        yield
    except BaseException:
        print(f"✗ {what} failed after {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        raise
    print(f"✓ {what} ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """One progress line (a sweep position, a cache hit) on a TTY; nothing otherwise."""
    if interactive():
        print(message, file=sys.stderr, flush=True)
