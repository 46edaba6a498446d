"""Availability zones per region, so that a zone the region does not have is refused as the cloud refuses it.

The table holds the zones of the regions the emulator is most often run as; ``--zones`` replaces it for the
served region. A region not in the table (and without ``--zones``) accepts any ``<region>-<n>``.
"""

from __future__ import annotations

ZONES: dict[str, tuple[int, ...]] = {
    "ap-guangzhou": (1, 2, 3, 4, 6, 7),
    "ap-shanghai": (1, 2, 3, 4, 5, 8),
    "ap-beijing": (1, 2, 3, 4, 5, 6, 7, 8),
    "ap-nanjing": (1, 2, 3),
    "ap-chengdu": (1, 2),
    "ap-chongqing": (1,),
    "ap-hongkong": (1, 2, 3),
    "ap-singapore": (1, 2, 3, 4),
}


def zones_of(region: str) -> tuple[str, ...] | None:
    """The zones of ``region``, or None if the table does not know it (then any well-formed zone is taken)."""
    numbers = ZONES.get(region)
    return None if numbers is None else tuple(f"{region}-{n}" for n in numbers)
