"""swapon(2) (mmshell/mm/swapfile.py; mm/swapfile.c).

A device joins the allocation list in priority order; one given no priority
counts down from -2 (--least_priority); bad sizes, names and priorities are
refused without adding a device.  (swapoff's walk, also in swapfile.py, is
tested with the system call in test_swapoff.py.)
"""

from __future__ import annotations

import pytest

from mm_unit import M, boot, swapon
from mmshell.mm.errors import MmError


def test_swapon_without_a_priority_counts_down_from_minus_two() -> None:
    """sys_swapon(): a device without a priority gets --least_priority: -2, -3, ..."""
    k = boot()
    assert [swapon(k, n).prio for n in ("x", "y", "z")] == [-2, -3, -4]
    assert [si.name for si in k.active_swap()] == ["x", "y", "z"]


@pytest.mark.parametrize("name, size, prio, errno", [
    ("zram0", 16 * M, None, "EBUSY"),
    ("zram1", 16 * M + 1, None, "EINVAL"),
    ("zram1", 9 * 4096, None, "EINVAL"),
    ("zram1", 16 * M, 32768, "EINVAL"),
    ("zram1", 16 * M, -2, "EINVAL"),
])
def test_swapon_refusals(name: str, size: int, prio: int | None, errno: str) -> None:
    """sys_swapon(): an active name, a size that is not whole pages or under 10 pages, or a
    priority outside -1..32767 is refused, and no device is added."""
    k = boot()
    swapon(k, "zram0")
    with pytest.raises(MmError) as e:
        swapon(k, name, size, prio=prio)
    assert e.value.errno == errno
    assert [si.name for si in k.active_swap()] == ["zram0"]
