"""Sizes in bytes as people write them (``16MB``) and as messages show them."""

from __future__ import annotations

_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}



def parse_size(text: str | int) -> int:
    """``"16MB"``, ``"512 kB"``, ``"1MiB"`` or a number of bytes, as a positive number of bytes."""
    raw = str(text).strip().lower().replace(" ", "").replace("_", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number):] or "b"
    if unit not in _UNITS or not number:
        raise ValueError(f"{text!r} is not a size: write bytes or a number with kB, MB, GB, KiB, "
                         "MiB or GiB")
    size = int(float(number) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"{text!r} is not a positive size")
    return size


def format_size(size: int) -> str:
    """Bytes for a message: ``16.0 MB (16,000,000 bytes)``."""
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit} ({size:,} bytes)"
    return f"{size:,} bytes"
