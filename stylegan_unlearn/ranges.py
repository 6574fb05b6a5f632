"""Integer lists as users write them, '0-63' or '3,17,40-45' (seeds, mostly): parse and write back.

Standard library only, so the command-line helpers (and a patched reference train.py) can use it
without torch.
"""
import re
from typing import List, Sequence

__all__ = ["parse_int_ranges", "format_int_ranges"]

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def parse_int_ranges(text: str) -> List[int]:
    """Parse '0-3,7,10-11' into [0, 1, 2, 3, 7, 10, 11] (ranges are inclusive, order kept)."""
    if text is None or not str(text).strip():
        raise ValueError("expected a list of integers such as '0-63' or '3,17,40-45', got an empty value")
    values: List[int] = []
    for part in str(text).split(","):
        match = _RANGE.match(part)
        if not match:
            raise ValueError(f"'{part.strip()}' is not an integer or a range like '40-45' (in '{text}')")
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) is not None else start
        if stop < start:
            raise ValueError(f"range '{part.strip()}' runs backwards; write it as '{stop}-{start}'")
        values.extend(range(start, stop + 1))
    return values


def format_int_ranges(values: Sequence[int]) -> str:
    """[0, 1, 2, 3, 7, 9, 10] → '0-3,7,9-10' (the inverse of `parse_int_ranges`, order kept)."""
    parts: List[str] = []
    values = [int(v) for v in values]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if j == i else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)
