"""Termination signals end the command line as Ctrl-C does: temporary files removed, children killed.

SIGTERM and SIGHUP raise :class:`Terminated` (a KeyboardInterrupt) in the main
thread, so every ``atomic_output`` removes its ``.part`` file and the isolated
reader's parent kills its child on the way out. A child reader also asks the
kernel to kill it when its parent dies, whatever kills the parent (SIGKILL
included), so it can never outlive the command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Terminated", "terminate_like_interrupt", "die_with_parent"]

_PR_SET_PDEATHSIG = 1
_HANDLED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP raise :class:`Terminated` (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_terminated) for signum in _HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def die_with_parent(parent_pid: int) -> None:
    """In a child process: be killed when the parent dies (Linux ``PR_SET_PDEATHSIG``), or exit if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
