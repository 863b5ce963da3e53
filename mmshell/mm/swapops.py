"""swp_entry_t: a swap type and an offset (include/linux/swapops.h).

A swap entry prints as `TYPE:0xOFFSET` (`0:0x200`) and parses back from that text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class SwpEntry:
    """swp_entry_t: `type` indexes swap_info[], `offset` is the slot on that device."""

    type: int
    offset: int

    def __str__(self) -> str:
        return f"{self.type}:{self.offset:#x}"

    @classmethod
    def parse(cls, text: str) -> "SwpEntry":
        """Inverse of str(): '0:0x200' -> SwpEntry(0, 512)."""
        type_text, sep, off_text = text.partition(":")
        if not sep:
            raise ValueError(f"swap entry {text!r} is not TYPE:OFFSET")
        return cls(int(type_text, 0), int(off_text, 0))

    def __add__(self, nr: int) -> "SwpEntry":
        return SwpEntry(self.type, self.offset + nr)
