"""Numbers and amounts in words, the one way every layer writes them (explanations, the CLI,
the inventory): ``8`` not ``8.0``, ``0.5``, never ``1e+09``; ``1 GPU``, ``2 GPUs``; memory in
GiB from 1 GiB on.
"""

from __future__ import annotations

from allot.core.model import MIB_PER_GIB


def number(value: float) -> str:
    """``8`` for 8.0, ``0.5`` for 0.5, ``999999999`` for a large whole number (never ``1e+09``)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def quantity(value: float, unit: str) -> str:
    """``value`` of ``unit`` in words, singular only for exactly one: ``1 GPU``, ``2 GPUs``,
    ``0.5 GPUs``."""
    return f"{number(value)} {unit}" if value == 1 else f"{number(value)} {unit}s"


def memory_size(mib: float, places: int = 2) -> str:
    """MiB as a size, in GiB from 1 GiB on with at most ``places`` decimals: ``512 MiB``,
    ``4 GiB``, ``23.54 GiB``."""
    if mib < MIB_PER_GIB:
        return f"{number(mib)} MiB"
    gib = f"{mib / MIB_PER_GIB:.{places}f}".rstrip("0").rstrip(".")
    return f"{gib} GiB"
