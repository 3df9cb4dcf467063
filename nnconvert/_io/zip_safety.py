"""Safety checks for formats stored in zip archives, applied before anything is inflated.

Members are read from the archive in memory, never extracted; a member with
an unsafe path, a duplicate name, or a declared size no honest archive has
(a zip bomb) is refused from the central directory alone.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from ..errors import ReadError

__all__ = ["ZIP_SIGNATURE", "MAX_EXPANSION", "MIN_MEMBER_ALLOWANCE", "MAX_MEMBER_BYTES", "checked_members", "member_bytes"]

ZIP_SIGNATURE = b"PK\x03\x04"
# A member may not declare more than this many bytes per byte of archive,
# nor more than the absolute cap; a zip bomb fails before anything is inflated.
MAX_EXPANSION = 200
MIN_MEMBER_ALLOWANCE = 64 * 2**20
MAX_MEMBER_BYTES = 4 * 2**30


def checked_members(archive: zipfile.ZipFile, path: Path, format_name: str) -> dict[str, zipfile.ZipInfo]:
    """Members by name, after refusing unsafe names and sizes no honest archive declares."""
    archive_size = max(path.stat().st_size, 1)
    allowance = min(max(MIN_MEMBER_ALLOWANCE, MAX_EXPANSION * archive_size), MAX_MEMBER_BYTES)
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise ReadError(f"the archive has a member with an unsafe path {name!r}; refusing it", path=path, format=format_name)
        if name in members:
            raise ReadError(f"the archive has two members named {name!r}", path=path, format=format_name)
        total += info.file_size
        if info.file_size > allowance or total > allowance:
            raise ReadError(
                f"member {name!r} declares {info.file_size} bytes uncompressed ({total} in all) from a "
                f"{archive_size}-byte archive, over the limit of {allowance}; refusing a possible zip bomb",
                path=path,
                format=format_name,
            )
        members[name] = info
    return members


def member_bytes(
    archive: zipfile.ZipFile,
    members: Mapping[str, zipfile.ZipInfo],
    name: str,
    path: Path,
    cap: int,
    *,
    format_name: str,
    expected: str,
) -> bytes:
    """The content of member ``name``, at most ``cap`` bytes; ``expected`` names the archive kind for a missing member."""
    info = members.get(name)
    if info is None:
        raise ReadError(f"the archive has no {name!r}: not {expected}", path=path, format=format_name)
    if info.file_size > cap:
        raise ReadError(f"{name!r} declares {info.file_size} bytes, over the limit of {cap}", path=path, format=format_name)
    with archive.open(info) as stream:
        # zipfile stops at the declared size and checks the CRC, so a lying header cannot inflate more
        data = stream.read(cap + 1)
    if len(data) > cap:
        raise ReadError(f"{name!r} inflates past the limit of {cap} bytes", path=path, format=format_name)
    return data
