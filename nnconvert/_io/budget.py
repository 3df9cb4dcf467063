"""The whole-file expansion limit: what reading one file may allocate, whatever its nesting of compressions.

Each container checks its own layer (a zip member's declared size against the
archive, an HDF5 dataset's filters against the bytes it stores), but limits
per layer multiply: a zip member may inflate 200x, the gzip-compressed HDF5
dataset inside it another 1000x. So every reader also charges what it is
about to inflate or allocate -- zip members, HDF5 datasets, ``.npy`` arrays
-- to one budget for the whole file, *before* inflating it:

- at most :data:`EXPANSION_RATIO` bytes per byte of the file on disk, with a
  floor of :data:`FLOOR_BYTES` (small honest files with zero-filled weights);
- once the model's declared parameter count is known, at most what those
  parameters take in float64 (plus a fixed allowance for the description
  and containers), so a file cannot inflate data its model does not declare.

The budget lives in a context variable: a reader opens it for its file with
:func:`file_budget`, nested readers (the HDF5 inside a ``.keras`` zip) charge
the same one.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ReadError

__all__ = ["EXPANSION_RATIO", "FLOOR_BYTES", "Budget", "file_budget", "charge", "declare_parameters", "current_budget"]

EXPANSION_RATIO = 200
FLOOR_BYTES = 64 * 2**20
# what a file may allocate beyond its parameters' float64 bytes: documents, configs, container overhead
DECLARED_SLACK_BYTES = 16 * 2**20


@dataclass
class Budget:
    """Bytes one file's reading may still allocate."""

    path: Path
    format: str | None
    file_size: int
    limit: int
    spent: int = 0
    declared_limit: int | None = None

    def charge(self, nbytes: int, what: str) -> None:
        """Account for ``nbytes`` about to be inflated or allocated for ``what``; ReadError past the limit."""
        nbytes = max(int(nbytes), 0)
        limit = self.limit if self.declared_limit is None else min(self.limit, self.declared_limit)
        if self.spent + nbytes > limit:
            reason = (
                f"{EXPANSION_RATIO}x the file's {self.file_size} bytes (at least {FLOOR_BYTES})"
                if limit == self.limit
                else "what the model's declared parameters need in float64"
            )
            raise ReadError(
                f"{what} would expand to {nbytes} bytes ({self.spent + nbytes} for the whole file so far), "
                f"over the whole-file limit of {limit} bytes ({reason}); refusing a possible compression bomb",
                path=self.path,
                format=self.format,
            )
        self.spent += nbytes


_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("nnconvert_read_budget", default=None)


def current_budget() -> Budget | None:
    return _CURRENT.get()


@contextlib.contextmanager
def file_budget(path: str | os.PathLike[str], format_name: str | None) -> Iterator[Budget]:
    """The budget for reading ``path``: a new one, or the enclosing reader's when nested."""
    outer = _CURRENT.get()
    if outer is not None:
        yield outer
        return
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    budget = Budget(Path(path), format_name, size, max(FLOOR_BYTES, EXPANSION_RATIO * size))
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def charge(nbytes: int, what: str) -> None:
    """Charge the current file's budget (nothing happens outside a reader's :func:`file_budget`)."""
    budget = _CURRENT.get()
    if budget is not None:
        budget.charge(nbytes, what)


def declare_parameters(count: int) -> None:
    """The model declares ``count`` parameters: reading may not allocate much more than they need."""
    budget = _CURRENT.get()
    if budget is not None and count >= 0:
        declared = budget.spent + 8 * int(count) + DECLARED_SLACK_BYTES
        budget.declared_limit = declared if budget.declared_limit is None else min(budget.declared_limit, declared)
