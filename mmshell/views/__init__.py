"""Read-only rich renderables over the simulated kernel's state (the `show` views and step results).

Each view is built from the kernel state at construction time (so it is a
snapshot), renders with `__rich__`, and gives the same facts as plain JSON
data with `to_json()`.  Views import `mmshell.mm` and rich only.
"""

from __future__ import annotations

from .console import make_console, render_text
from .meminfo import MeminfoView
from .pagemap import PagemapView
from .pt import PageTableView
from .smaps import SmapsView
from .step import Digest, StepView, digest
from .swap import SwapView
from .swapcache import SwapCacheView
from .vmas import VmasView
from .vmstat import VmstatView

__all__ = [
    "Digest", "MeminfoView", "PagemapView", "PageTableView", "SmapsView", "StepView", "SwapCacheView",
    "SwapView", "VmasView", "VmstatView", "digest", "make_console", "render_text",
]
