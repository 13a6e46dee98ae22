"""Size checks for uploaded files, before anything parses them.

Gradio refuses an upload over ``max_file_size`` while it streams in (HTTP 413, the partial file
deleted), so a file that reaches a handler is within the limit on disk. What it inflates to is
another matter: an XLSX is a zip, and 1 MB of deflated zeros inflates to about 1 GB (deflate's
best ratio is ~1032:1). ``open_zip_bounded`` checks a zip's declared sizes from its central
directory, then inflates every member in 64 KiB pieces, counting, before the caller's parser (for
example openpyxl) sees the file: memory stays at one piece whatever the file claims or holds.

No Gradio here: the checks are plain functions, so parsers and tests call them directly.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from ..core.sizes import format_size, parse_size  # noqa: F401 - parse_size: part of this module's API

CHUNK = 64 * 1024  # inflate piece: memory use of a zip check, whatever the archive holds


class UploadRefused(ValueError):
    """An upload too large (on disk or once inflated) or not readable; the message is the user's."""


def check_upload(path: str | Path, limit: int) -> int:
    """The file's size on disk; refuses a missing file or one over ``limit`` without reading it."""
    name = Path(path).name
    try:
        size = Path(path).stat().st_size
    except OSError as error:
        raise UploadRefused(f"{name} could not be read ({error.strerror or error})") from None
    if size > limit:
        raise UploadRefused(f"{name} is {format_size(size)}; uploads are limited to "
                            f"{format_size(limit)}")
    return size


def read_upload(path: str | Path, limit: int) -> bytes:
    """The bytes of a plain (uncompressed) upload, refused before reading if over ``limit``."""
    check_upload(path, limit)
    with open(path, "rb") as file:
        data = file.read(limit + 1)  # the file may have grown since the check
    if len(data) > limit:
        raise UploadRefused(f"{Path(path).name} is over the upload limit of {format_size(limit)}")
    return data


def check_zip(path: str | Path, limit: int) -> int:
    """Refuse a zip (XLSX, DOCX, …) whose content inflates past ``limit``; return the inflated size.

    Two checks: the sizes the central directory declares (free to read, and what a bomb cannot
    hide without lying), then an inflate pass over every member in CHUNK pieces, counted across
    members. Python's zipfile stops a member at its declared size and then checks its CRC, so a
    header that lies is caught here as a bad file, before a parser trusts it; the running count is
    the bound for any member that would inflate further.
    """
    name = Path(path).name
    check_upload(path, limit)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            declared = sum(m.file_size for m in members)
            if declared > limit:
                raise UploadRefused(f"{name} inflates to {format_size(declared)}; uploaded content "
                                    f"is limited to {format_size(limit)}")
            total = 0
            for member in members:
                with archive.open(member) as stream:
                    while piece := stream.read(CHUNK):
                        total += len(piece)
                        if total > limit:
                            raise UploadRefused(
                                f"{name}: {member.filename} inflates past the limit of "
                                f"{format_size(limit)} for uploaded content")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError,
            EOFError) as error:
        raise UploadRefused(f"{name} is not a readable zip/XLSX file ({error})") from None
    except RuntimeError as error:  # an encrypted member
        raise UploadRefused(f"{name} could not be opened ({error})") from None
    return total


def open_zip_bounded(path: str | Path, limit: int) -> zipfile.ZipFile:
    """A checked zip, open for reading (use it as a context manager); see ``check_zip``.

    Parsers that open the file themselves (``openpyxl.load_workbook(path)``) call ``check_zip``
    first instead.
    """
    check_zip(path, limit)
    return zipfile.ZipFile(path)
