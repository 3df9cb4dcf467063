"""Open a file named by a file (ONNX external data) inside a folder, once, checking what was opened.

Checking a path and then opening it by name leaves a window in which a
symbolic link can be swapped in. Here the file is opened component by
component from the folder's own descriptor with ``O_NOFOLLOW`` (no symbolic
link is followed anywhere on the way), the opened descriptor is checked
with ``fstat`` (a regular file), and the caller reads from that descriptor
only. Where the platform lacks ``dir_fd``/``O_NOFOLLOW`` (Windows), the path
is resolved, opened, and the descriptor compared with what was resolved.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

__all__ = ["UnsafeLocation", "open_inside", "read_at"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class UnsafeLocation(Exception):
    """The location cannot be opened safely; the message says why (the caller adds file and field)."""


def open_inside(folder: str | os.PathLike[str], location: str) -> int:
    """A read-only descriptor of the regular file ``location`` (relative, ``/``-separated) inside ``folder``.

    Raises:
        UnsafeLocation: a component is a symbolic link, missing, not a directory, or the file is not regular.
    """
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or location.startswith(("/", "\\")):
        raise UnsafeLocation("is not a plain relative path")
    if _NOFOLLOW and _DIRECTORY and os.open in os.supports_dir_fd:
        return _open_walking(Path(folder), parts)
    return _open_resolved(Path(folder), parts)  # pragma: no cover - Windows


def _open_walking(folder: Path, parts: tuple[str, ...]) -> int:
    directory = os.open(folder, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=directory)
            except OSError as exc:
                raise UnsafeLocation(f"cannot be opened: folder {part!r} is {_why(exc)}") from None
            os.close(directory)
            directory = inner
        try:
            fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _BINARY, dir_fd=directory)
        except OSError as exc:
            raise UnsafeLocation(f"cannot be opened: {parts[-1]!r} is {_why(exc)}") from None
    finally:
        os.close(directory)
    return _regular(fd)


def _open_resolved(folder: Path, parts: tuple[str, ...]) -> int:  # pragma: no cover - Windows
    base = folder.resolve()
    target = base.joinpath(*parts)
    if target.resolve() != target or not target.is_relative_to(base):
        raise UnsafeLocation("goes through a symbolic link; external data must be plain files in the model's folder")
    try:
        fd = os.open(target, os.O_RDONLY | _BINARY)
    except OSError as exc:
        raise UnsafeLocation(f"cannot be opened: {_why(exc)}") from None
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(target, follow_symlinks=False))
    except OSError:
        same = False
    if not same:
        os.close(fd)
        raise UnsafeLocation("changed while it was being opened")
    return _regular(fd)


def _regular(fd: int) -> int:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeLocation("is not a regular file")
    return fd


def _why(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP or exc.errno == errno.ENOTDIR and _NOFOLLOW:
        return "a symbolic link (or not a folder): a link could lead outside the model's folder, so none is followed"
    if exc.errno == errno.ENOENT:
        return "missing"
    return exc.strerror or str(exc)


def read_at(fd: int, offset: int, length: int) -> bytes:
    """Exactly ``length`` bytes at ``offset`` of the open file (fewer if it ends early)."""
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, min(length - done, 1 << 26), offset + done) if hasattr(os, "pread") else _seek_read(fd, offset + done, length - done)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def _seek_read(fd: int, offset: int, length: int) -> bytes:  # pragma: no cover - Windows
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, min(length, 1 << 26))
