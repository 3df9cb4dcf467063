"""Several files that land together or not at all (a model and the evidence written beside it).

Everything is first written into a private staging folder that this process
creates inside the target folder (``mkdtemp``: nobody else can have planted
links in it). Committing renames each staged entry into the target folder,
model last; an entry already there is first renamed aside into the staging
folder (``rename`` moves a planted symbolic link itself, never what it points
to). If any step fails, what was moved is moved back, and the target folder
is as it was. Nothing is ever written through a path this process did not
create.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import WriteError
from .atomic import fsync_directory

__all__ = ["Bundle", "staged_bundle"]


class Bundle:
    """A staging folder whose entries are committed into ``folder`` together."""

    def __init__(self, folder: Path, staging: Path):
        self.folder = folder
        self.staging = staging
        self._aside = staging / ".replaced"

    def path(self, name: str) -> Path:
        """Where to write entry ``name`` (a file or a folder) before the commit."""
        return self.staging / name

    def commit(self, names: list[str], retire: list[str] = ()) -> None:  # type: ignore[assignment]
        """Move ``names`` (in order; put the main file last) into the folder; ``retire`` entries are removed.

        Raises:
            WriteError: an entry could not be moved; the folder is left as it was.
        """
        self._aside.mkdir()
        moved_aside: list[tuple[Path, Path]] = []
        placed: list[tuple[Path, Path]] = []
        try:
            for name in [*retire, *names]:
                target = self.folder / name
                if os.path.lexists(target):
                    aside = self._aside / name
                    os.rename(target, aside)  # moves a link itself, never its target
                    moved_aside.append((aside, target))
            for name in names:
                target = self.folder / name
                os.rename(self.staging / name, target)
                placed.append((target, self.staging / name))
        except BaseException as exc:
            for target, back in reversed(placed):
                with contextlib.suppress(OSError):
                    os.rename(target, back)
            for aside, target in reversed(moved_aside):
                with contextlib.suppress(OSError):
                    os.rename(aside, target)
            if isinstance(exc, OSError):
                raise WriteError(f"{self.folder}: cannot put the output files in place ({exc}); nothing was changed") from None
            raise
        fsync_directory(self.folder)


@contextlib.contextmanager
def staged_bundle(folder: str | os.PathLike[str]) -> Iterator[Bundle]:
    """A :class:`Bundle` for ``folder``; the staging folder (and whatever was replaced) is removed at the end."""
    folder = Path(folder) if str(folder) else Path(".")
    try:
        staging = Path(tempfile.mkdtemp(prefix=".nnconvert-staging-", suffix=".part", dir=folder))
    except OSError as exc:
        raise WriteError(f"{folder}: cannot create a staging folder: {exc}") from None
    try:
        yield Bundle(folder, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # rmtree removes links, never follows them
