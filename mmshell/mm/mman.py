"""madvise(2) advice values (include/uapi/asm-generic/mman-common.h).

The simulated kernel takes advice as these numbers, as the system call does;
the .mmsh words for them belong to the language (lang/registry.py).
"""

from __future__ import annotations

from enum import IntEnum


class Madv(IntEnum):
    """The MADV_* values the simulation implements, with the kernel's numbers."""

    MADV_DONTNEED = 4
    MADV_FREE = 8
    MADV_HUGEPAGE = 14
    MADV_NOHUGEPAGE = 15
    MADV_COLD = 20
    MADV_PAGEOUT = 21
    MADV_COLLAPSE = 25
