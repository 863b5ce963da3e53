"""Help that teaches: `help legend`, `help pt`, `help swap`, `help counters`, `help COUNTER`,
and the wrapping that keeps every help text inside 80 columns.

The registry's help (commands, settings, its own topics) asks here first for
these topics; counter topics come from the one table of counter docs
(lang/counters.py).
"""

from __future__ import annotations

import re
import textwrap

from .counters import counter_doc, counter_topics, counters_help

__all__ = ["MAX_UNDO", "UNDO_BUDGET", "SHELL_COMMANDS", "TEACHING_TOPICS", "teaching_topics", "teaching_text",
           "wrap_help", "HELP_WIDTH"]

#: Help lines are wrapped at words to this width: printed two columns in, they end before column 80.
HELP_WIDTH = 77

LEGEND = """\
Every abbreviation the views print (help notation: how numbers are written).

Entries (show pt, the step summary, show pagemap)
  none / table / huge / swap   what a PMD slot holds: nothing, a PTE table, a
                               PMD-mapped THP, a PMD swap entry (the series)
  N × huge                     N neighbouring PMDs alike, folded into one row
  A … B                        a folded row's first and last PMD
  THP pfn 0x200..0x3ff         a 2 MiB folio and its page frames
  huge zero page               the shared read-only huge zero page
  0-511 present|swap|none|zero PTE indices in one table and what they hold
  W                            writable (a write does not fault)
  D                            dirty (written since it was last clean)
  excl                         exclusive: PageAnonExclusive on a page, or the
                               swap entry's exclusive bit; shared after fork
  sd, uffd-wp                  soft-dirty; userfaultfd write-protected
  (THP), (order N)             a PTE maps part of a large folio (order 9:
                               a THP), not a small page of its own
  excl=1                       show pagemap's exclusive bit (PM_MMAP_EXCLUSIVE)
  PTE 3: old → new             a PTE a step changed in a table that stayed a
                               table (`PTEs 0-2:` a run of them); a PMD whose
                               kind changed is shown whole, old → new
  unmapped → rw-p              a VMA a step mapped (`rw-p → unmapped`: one it
                               unmapped, `rw-p → r--p`: one it changed)

Swap (show swap, show swapcache, the step summary)
  slots 0x200-0x3ff            offsets on a swap device, one 4 KiB page each
  count N                      a slot's swap_map count: the entries pointing at it
  +cache                       SWAP_HAS_CACHE: a folio in the swap cache holds it
  free                         a slot no entry points at
  slot 0x203: count 1 → free   a slot a step changed: old → new
  type                         the swap type: the device's index (swap_info[])
  kind zram|disk|file          synchronous (zram), asynchronous (disk), or a
                               file that cannot give whole clusters
  prio                         swap priority: the highest is used first
  used / used kB               slots in use, and as kB
  clusters free/order-9/order-0  2 MiB clusters: free, holding whole THPs
                               (order 9), holding single pages (order 0);
                               `of N`: the device's clusters
  state clean|dirty            show swapcache: a folio written back, or not
  mapped (N), lru              its pages mapped, and its LRU list

Processes, settings and counters
  pmd_swap=on|off              prompt and toolbar: the series (on) or mainline
  free 1020M/1G, z 2M/1G       toolbar: free RAM of all; each swap device used/size
  perms rw-p                   read, write, execute, p: private (show vmas)
  hugepage, nohugepage, uffd   the VMA's MADV_HUGEPAGE, MADV_NOHUGEPAGE, userfaultfd
  vmstat: NAME +N              a counter a step moved, and by how much
  mthp: NAME +N                a PMD-size (hugepages-2048kB) mTHP stat
  *                            show vmstat: changed in the last step
  trace: a > b x512            kernel functions in call order; x512: 512 calls in a row

help COUNTER says what a counter counts (help thp_swpout_pmd, help
mthp.swpin, help smaps.SwapPss); help counters lists the ones the step
summary hides.
"""

PT = """\
show pt [RANGE]: the current process's page table, one row per PMD slot (2 MiB).

A 64-bit x86 address goes through four levels; mmshell shows the last two.
Each PMD slot (one per 2 MiB of address space) holds one of:
  none     nothing mapped yet (the first touch faults)
  huge     a PMD-mapped THP: one entry maps 2 MiB (do_huge_pmd_anonymous_page)
  table    a PTE table: 512 entries of 4 KiB each, folded into runs
           (0-255 present ...; 256-511 swap ...)
  swap     a PMD swap entry: with the series, reclaim leaves one entry for
           the whole THP (set_pmd_swap_entry) instead of splitting the PMD
           into a table of 512 PTE swap entries as mainline does
Neighbouring slots alike are folded (`4 × huge`). help legend explains every
flag (W D excl ...); the step summary shows each slot a step changed, old → new.
"""

SWAP = """\
How anonymous memory is swapped, and what the swap views show.

Reclaim (`reclaim`, `madvise RANGE pageout`, direct reclaim when RAM runs
out) picks folios off the LRU (shrink_folio_list), reserves swap slots
(folio_alloc_swap: a THP wants a whole 2 MiB cluster), adds the folio to the
swap cache, replaces every mapping with a swap entry (try_to_unmap) and
writes the folio out (__swap_writepage).
  mainline (set pmd_swap off): the PMD is split first, so a THP leaves 512
    PTE swap entries, and comes back one 4 KiB fault at a time (do_swap_page).
  the series (set pmd_swap on): one PMD swap entry (set_pmd_swap_entry), and
    one fault brings the whole 2 MiB back (do_huge_pmd_swap_page); when a
    PMD-order resource is missing, it splits and falls back (F1-F8).
A device's swap_map counts, per slot, the entries that point at it (fork
shares them: count 2), and +cache marks a slot held by the swap cache.  zram
is synchronous: swap-in skips the swap cache.  A disk is not: the folio stays
in the swap cache after writeback, and swap-in reads ahead.
Views: show swap (devices, clusters, swap_map runs), show swapcache, show pt.
"""

#: Steps the interactive prompt can take back (shell/journal.py keeps the machine before each),
#: and the host memory those copies may take (costed as lang/budget.py costs the machine).
MAX_UNDO = 16
UNDO_BUDGET = 512 << 20

#: The commands only the interactive prompt takes (shell/meta.py runs them), each alone on
#: its line: word -> (synopsis, what it does).
SHELL_COMMANDS: dict[str, tuple[str, str]] = {
    "undo": ("undo", "take back the last step: the machine as it was before it"),
    "back": ("back N", f"take back the last N steps (the last {MAX_UNDO} can be taken back, as long as "
                       f"their undo records fit in {UNDO_BUDGET >> 20} MiB)"),
    "history": ("history", "list the steps so far"),
    "save": ("save FILE.mmsh", "write the commands that ran as a script (refused ones and failed "
                               "expectations left out); `mmshell run FILE` ends in the same state"),
    "compare": ("compare", "run the commands that ran so far (as save writes them) on two fresh "
                           "machines, mainline and the series, side by side, as `mmshell compare FILE`"),
    "reset": ("reset", "boot a fresh machine; the history starts again"),
    "clear": ("clear", "clear the screen (Ctrl-L too)"),
    "quit": ("quit", "leave the shell (Ctrl-D too; `exit` when pid 1 is the only process)"),
}


def _shell_help() -> str:
    lines = ["The interactive prompt also takes these, each alone on its line:"]
    lines += [f"  {syn:<16}  {what}" for syn, what in SHELL_COMMANDS.values()]
    lines += ["",
              "A step is a command that may change something (not show, help, expect or a",
              "bare check). `set pager off` prints long output straight through instead of",
              "through a pager; Ctrl-C stops the command running and the rest of its line."]
    return "\n".join(lines)


TEACHING_TOPICS: dict[str, str] = {
    "legend": LEGEND,
    "pt": PT,
    "swap": SWAP,
    "shell": _shell_help(),
}


def teaching_topics() -> tuple[str, ...]:
    """The topics this module answers: legend, pt, swap, counters, vmstat and every counter."""
    return (*TEACHING_TOPICS, "counters", "vmstat", *counter_topics())


def teaching_text(topic: str) -> str | None:
    """The help text of a teaching topic, or None when `topic` is not one."""
    if topic in TEACHING_TOPICS:
        return TEACHING_TOPICS[topic]
    if topic in ("counters", "vmstat"):
        return counters_help()
    try:
        return counter_doc(topic).text()
    except KeyError:
        return None


_COLUMN = re.compile(r"^(\s*\S.*?\s{2,})\S")


def wrap_help(text: str, width: int = HELP_WIDTH) -> str:
    """Every line longer than `width` wrapped at words; a continuation lines up with the
    line's text column (after the first run of two or more spaces) or its indent."""
    out: list[str] = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        m = _COLUMN.match(line)
        indent = len(m.group(1)) if m and len(m.group(1)) <= 40 else len(line) - len(line.lstrip())
        out += textwrap.wrap(line, width=width, subsequent_indent=" " * indent, break_on_hyphens=False,
                             break_long_words=False, drop_whitespace=True) or [""]
    return "\n".join(out)
