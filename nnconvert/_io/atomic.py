"""Atomic file output: write beside the target, fsync, then ``os.replace``.

A conversion that fails at any point leaves no output file and never
damages an existing one.

Every writer receives an :class:`Output`: the file to fill, the name it
will end up with, and where to declare companions. Some outputs are more
than one file (an ONNX model and its external-data sidecar): new companions
are removed if the write fails, companions of the replaced file only once
the replacement is committed. The writer must give a new companion a name no
existing file refers to (ONNX: a content hash), so that the old target and
its own companions stay valid until the one ``os.replace`` that commits.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Output", "as_output", "atomic_output", "fsync_path", "fsync_directory", "publish_mode"]


@dataclass
class Output:
    """Where a writer writes (``os.PathLike``: ``open(output)`` opens :attr:`path`).

    Attributes:
        path: the file to fill (under ``nnconvert.save``, a temporary file beside the target).
        final_path: the name the file will have (a companion is named after it).
        committed_later: True when a caller commits ``path`` to ``final_path`` afterwards
            (:func:`atomic_output`): companions are then settled at that commit.
        new_companions: companions written for this output (removed if the write fails).
        retired_companions: companions of the replaced file that the new output no longer
            uses (removed after the commit; a failure to remove one only leaves it behind).
    """

    path: Path
    final_path: Path
    committed_later: bool = False
    new_companions: list[Path] = field(default_factory=list)
    retired_companions: list[Path] = field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.path)

    def add_companion(self, companion: Path) -> None:
        """Declare a file written beside the output; it goes away if the write fails before the commit."""
        if self.committed_later:
            self.new_companions.append(companion)

    def retire(self, companions: list[Path]) -> None:
        """Companions of the replaced file the new one no longer uses: removed once the new file is in place.

        Written straight to its final name, the new file is in place already; written
        elsewhere and committed by someone else, the old companions stay (never a lost one).
        """
        if self.committed_later:
            self.retired_companions.extend(companions)
        elif self.path.resolve() == self.final_path.resolve():
            _remove_all(companions)


def as_output(target: str | os.PathLike[str] | Output, final_path: str | os.PathLike[str] | None = None) -> Output:
    """``target`` as an :class:`Output`: itself if it is one, else a direct write (final name ``final_path`` or ``target``)."""
    if isinstance(target, Output):
        return target
    return Output(Path(target), Path(final_path) if final_path is not None else Path(target))


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
def atomic_output(target: str | os.PathLike[str]) -> Iterator[Output]:
    """Yield the :class:`Output` of a temporary file in ``target``'s folder; on success it replaces ``target``.

    On any exception (KeyboardInterrupt included) the temporary file and the
    output's new companions are removed and ``target`` is left as it was.
    After a successful replace the retired companions are removed.
    """
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    os.close(fd)
    temp = Path(temp_name)
    output = Output(temp, target, committed_later=True)
    try:
        yield output
        fsync_path(temp)
        publish_mode(temp, target)
        os.replace(temp, target)
        fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        _remove_all(output.new_companions)
        raise
    _remove_all(output.retired_companions)
