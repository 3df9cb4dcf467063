"""Atomic file output: write beside the target, fsync, then ``os.replace``.

A conversion that fails at any point leaves no output file and never
damages an existing one.

Some outputs are more than one file (an ONNX model and its external-data
sidecar). A writer registers its companions with the :class:`AtomicOutput`
of the file it is writing (:func:`pending_output`): new companions are
removed if the write fails, companions of the replaced file only once the
replacement is committed. The writer must give a new companion a name no
existing file refers to (ONNX: a content hash), so that the old target and
its own companions stay valid until the one ``os.replace`` that commits.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AtomicOutput", "atomic_output", "pending_output", "fsync_path", "fsync_directory", "publish_mode"]


@dataclass
class AtomicOutput:
    """One atomic write in progress.

    Attributes:
        temp: the temporary file the writer fills.
        target: the file it replaces on success.
        discard_on_failure: companions written for the new output (removed if the write fails).
        retire_after_commit: companions of the replaced file that the new output no longer uses
            (removed after the replace; a failure to remove one only leaves it behind).
    """

    temp: Path
    target: Path
    discard_on_failure: list[Path] = field(default_factory=list)
    retire_after_commit: list[Path] = field(default_factory=list)


# temporary path -> its write in progress; temporary names are unique, so threads never collide
_PENDING: dict[str, AtomicOutput] = {}
_PENDING_LOCK = threading.Lock()


def pending_output(path: str | os.PathLike[str]) -> AtomicOutput | None:
    """The atomic write whose temporary file is ``path``, or None when ``path`` is written directly."""
    with _PENDING_LOCK:
        return _PENDING.get(str(path))


def fsync_path(path: Path) -> None:
    """Flush a finished file to disk."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform allows)."""
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish_mode(path: Path, target: Path) -> None:
    """Give a temporary file (created 0600) the permissions ``target`` has, or a new file would get."""
    if target.exists():
        with contextlib.suppress(OSError):
            os.chmod(path, target.stat().st_mode & 0o7777)
        return
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success it replaces ``target``.

    On any exception (KeyboardInterrupt included) the temporary file and the
    companions registered in ``discard_on_failure`` are removed and
    ``target`` is left as it was. After a successful replace the companions
    in ``retire_after_commit`` are removed.
    """
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    os.close(fd)
    temp = Path(temp_name)
    output = AtomicOutput(temp, target)
    with _PENDING_LOCK:
        _PENDING[str(temp)] = output
    try:
        yield temp
        fsync_path(temp)
        publish_mode(temp, target)
        os.replace(temp, target)
        fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        _remove_all(output.discard_on_failure)
        raise
    finally:
        with _PENDING_LOCK:
            _PENDING.pop(str(temp), None)
    _remove_all(output.retire_after_commit)
