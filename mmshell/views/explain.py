"""`explain on`: a few plain sentences after each step, built from what the step did.

Nothing here is written per script or per command.  The sentences are put
together from the step's record:

- the path: the kernel functions the step went through (the trace points of
  mm/, recorded for the step whether or not `trace` is on), in call order,
  with what the central ones do (:data:`NOTES`, one line per function);
- a fallback and its cause: a trace point that failed, fell back or split
  (`do_huge_pmd_swap_page(no PMD-order folio): split`) says so in its name;
- the entries and slots that changed: the step view's (views/step.py, at the
  finest grain of step_diff.py) VMA changes, PMD changes or the PTEs that changed
  in a table, new and gone processes, and swap slots and counts per device;
- the counters that moved, each with what it counts (lang/counters.py, the
  table `help COUNTER` reads); the ones that restate another are named
  together at the end.

A step that ran no kernel function and changed nothing says that it only
looked, or that it changed a setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from mmshell.lang.counters import family_doc
from mmshell.lang.registry import COMMANDS, unwrap
from mmshell.lang.settings import setting_names, setting as setting_spec

from .describe import PmdDesc
from .fmt import slots_text

if TYPE_CHECKING:
    from mmshell.lang.parser import Command

    from .step import PmdChange, StepView

__all__ = ["NOTES", "explain_step", "fold_calls"]

#: What a kernel function does, for the ones worth a sentence: (weight, clause).  Weight
#: 2 is a function central to its step; 1 one that helps; the sentence names the weight-2
#: ones (or, without any, the weight-1 ones), at most three.
NOTES: dict[str, tuple[int, str]] = {
    "do_mmap": (2, "do_mmap created the VMA; no page is allocated until the memory is touched"),
    "do_vmi_munmap": (2, "do_vmi_munmap removed the VMAs of the range and zapped their entries"),
    "zap_huge_pmd": (1, "zap_huge_pmd dropped a whole PMD-level entry at once"),
    "zap_pte_range": (1, "zap_pte_range dropped PTEs one table at a time, freeing pages and swap slots"),
    "exit_mmap": (2, "exit_mmap tore the whole address space down, freeing its pages and swap slots"),
    "dup_mmap": (2, "dup_mmap copied the parent's VMAs and page tables into the child"),
    "copy_huge_pmd": (1, "copy_huge_pmd shared a THP between parent and child, write-protected (COW)"),
    "copy_huge_non_present_pmd": (2, "copy_huge_non_present_pmd copied a PMD swap entry and raised the swap "
                                     "count of its 512 slots (the series, patch 7/13)"),
    "copy_pte_range": (1, "copy_pte_range copied PTEs: present pages become COW-shared, swap entries "
                          "raise their slot's swap count"),
    "do_anonymous_page": (2, "do_anonymous_page gave each faulting 4 KiB page its own frame (or the "
                             "shared zero page on a read)"),
    "do_huge_pmd_anonymous_page": (2, "do_huge_pmd_anonymous_page allocated a 2 MiB THP and mapped it "
                                      "with one PMD entry"),
    "set_huge_zero_folio": (2, "a read fault mapped the shared huge zero page read-only with one PMD"),
    "do_huge_zero_wp_pmd": (2, "a write to the huge zero page replaced it with a THP of its own"),
    "do_huge_pmd_wp_page": (2, "do_huge_pmd_wp_page handled a write to a write-protected THP: reuse it "
                               "if this process alone maps it, else split the PMD and copy"),
    "wp_page_reuse": (1, "wp_page_reuse made a page writable in place, since no one else maps it"),
    "wp_page_copy": (2, "wp_page_copy gave the writer its own copy of a shared page (copy on write)"),
    "madvise": (1, "madvise applied the advice to the range"),
    "madvise_free": (2, "MADV_FREE marked the pages lazily freeable: reclaim may drop them without swap"),
    "try_to_free_pages": (2, "an allocation found no free memory, so it ran direct reclaim "
                             "(try_to_free_pages)"),
    "shrink_folio_list": (2, "shrink_folio_list took folios off the LRU to swap them out"),
    "folio_alloc_swap": (1, "folio_alloc_swap reserved swap slots for the folio (order=9: a whole "
                            "2 MiB cluster)"),
    "try_to_unmap": (1, "try_to_unmap replaced every mapping of the folio by swap entries"),
    "try_to_unmap_one": (1, "try_to_unmap_one wrote a PTE swap entry in place of each PTE"),
    "set_pmd_swap_entry": (2, "set_pmd_swap_entry replaced the PMD mapping by one PMD swap entry over all "
                              "512 slots, so the PMD stays whole (the series, patch 12/13)"),
    "__split_huge_pmd_locked": (2, "__split_huge_pmd_locked split a PMD into a table of 512 PTEs (with "
                                   "a PMD swap entry: 512 PTE swap entries)"),
    "__split_huge_zero_page_pmd": (2, "the huge zero page's PMD was split into 512 PTEs of the zero page"),
    "split_folio": (2, "split_folio broke a THP folio into 512 order-0 folios"),
    "__swap_writepage": (1, "__swap_writepage wrote the folio to the device"),
    "folio_rotate_reclaimable": (1, "when the write ended, folio_rotate_reclaimable moved the folio to the "
                                    "oldest end of the inactive list, where the next reclaim frees it first"),
    "swap_zeromap_folio_set": (1, "the pages were all zero: only the zeromap records them, nothing is "
                                  "written"),
    "zswap_store": (1, "zswap_store kept the pages compressed in memory instead of writing them"),
    "delete_from_swap_cache": (1, "delete_from_swap_cache took the folio out of the swap cache"),
    "folio_free_swap": (1, "folio_free_swap let go of the folio's swap slots, the data being back in "
                           "memory"),
    "do_huge_pmd_swap_page": (2, "do_huge_pmd_swap_page faulted a PMD swap entry back as one 2 MiB THP in "
                                 "one fault (the series, patch 11/13)"),
    "swapin_alloc_pmd_folio": (1, "swapin_alloc_pmd_folio allocated one PMD-order folio and read all 512 "
                                  "slots into it"),
    "do_swap_page": (2, "do_swap_page brought back one page per fault (or a whole folio found in the swap "
                        "cache)"),
    "swapin_readahead": (1, "swapin_readahead read neighbouring slots too, into the swap cache"),
    "swap_read_folio": (1, "swap_read_folio read from the device"),
    "sys_swapon": (2, "sys_swapon added the device: a swap_map of slots in 2 MiB clusters"),
    "try_to_unuse": (2, "try_to_unuse brought every page on the device back in before removing it"),
    "unuse_pmd": (2, "unuse_pmd mapped a PMD swap entry back as a whole THP (the series, patch 8/13)"),
    "unuse_pte_range": (1, "unuse_pte_range mapped each PTE swap entry of the device back"),
    "khugepaged_scan_mm_slot": (1, "khugepaged scanned every process for PTE tables it may collapse"),
    "collapse_huge_page": (2, "collapse_huge_page copied a table's 512 pages into a new THP mapped by one "
                              "PMD"),
    "mprotect_fixup": (2, "mprotect_fixup changed the protection of the VMAs (splitting them at the "
                          "edges)"),
    "move_vma": (2, "move_vma moved the VMA and its page tables to the new address"),
    "move_huge_pmd": (1, "move_huge_pmd moved a whole PMD entry without touching the pages"),
    "move_normal_pmd": (1, "move_normal_pmd moved a whole PTE table at once"),
    "move_ptes": (1, "move_ptes moved PTEs one by one"),
    "userfaultfd_register": (2, "the range is now registered with a userfaultfd (a UFFDIO_MOVE target)"),
    "move_pages": (2, "UFFDIO_MOVE (move_pages) moved pages to the destination without copying"),
    "move_pages_huge_pmd": (1, "move_pages_huge_pmd moved a whole THP's PMD"),
    "move_swap_pmd": (2, "move_swap_pmd moved a PMD swap entry whole (the series, patch 10/13)"),
    "move_pages_pte": (1, "move_pages_pte moved PTEs one by one"),
    "discard lazyfree folio": (2, "reclaim dropped a lazyfree folio that was clean, with no swap at all"),
}

#: What a call means after another: (caller, callee) -> why, added to the notes.
CONTEXT: dict[tuple[str, str], str] = {
    ("try_to_unmap", "__split_huge_pmd_locked"): "mainline has no PMD swap entry, so try_to_unmap splits "
                                                 "the PMD first (TTU_SPLIT_HUGE_PMD) and the THP goes out as "
                                                 "512 PTE swap entries",
    ("do_huge_pmd_swap_page", "__split_huge_pmd_locked"): "the PMD swap entry was split, so the fault "
                                                          "continued on the PTE path, one page at a time",
}

#: How a trace point names a fallback: `fn(why): split`, `fn(why): fail`, `fn(...) failed`.
_FALLBACK = re.compile(r"^(?P<fn>[\w ]+)(?:\((?P<why>[^)]*)\))?(?::\s*(?P<then>.+)| (?P<failed>failed))$")
_BASE = re.compile(r"^([\w ]+?)(?:\(.*)?(?: x\d+)?$")

#: What a quiet command (the registry's ``quiet`` trait: it runs no kernel function) does
#: instead, where that is more than reading the machine.
_INSTEAD: dict[str, str] = {
    "switch": "only changes which process the next commands act on",
    **dict.fromkeys(("trace", "explain", "timing"), "only switches what is printed"),
    "export": "only writes what was drawn to a file",
    "pause": "only marks a stop for `mmshell run --step` and `mmshell present`",
}
QUIET: dict[str, str] = {s.name: _INSTEAD.get(s.name, "only reads the machine") for s in COMMANDS if s.quiet}


@dataclass(frozen=True, slots=True)
class _Moved:
    family: str
    name: str
    delta: int


def fold_calls(names: Sequence[str]) -> list[str]:
    """The trace as printed: a call repeated back to back is one entry with its count (`x512`)."""
    out: list[str] = []
    counts: list[int] = []
    for n in names:
        base, _, times = n.partition(" x")
        k = int(times) if times.isdigit() else 1
        if out and out[-1] == base:
            counts[-1] += k
        else:
            out.append(base)
            counts.append(k)
    return [n if c == 1 else f"{n} x{c}" for n, c in zip(out, counts)]


def _base(call: str) -> str:
    m = _BASE.match(call)
    return m.group(1) if m else call


def _path_sentences(calls: Sequence[str]) -> list[str]:
    folded = fold_calls(calls)
    if len(folded) <= 8:
        out = [f"The kernel went through {' > '.join(folded)}."]
    else:                   # many faults: each function once, with how often, in first-call order
        tally: dict[str, int] = {}
        for c in folded:
            name, _, times = c.partition(" x")
            tally[name] = tally.get(name, 0) + (int(times) if times.isdigit() else 1)
        shown = [n if t == 1 else f"{n} x{t}" for n, t in tally.items()]
        rest = f", and {len(shown) - 8} other(s)" if len(shown) > 8 else ""
        out = [f"The kernel went through, in order of first call: {', '.join(shown[:8])}{rest}."]
    seen: list[str] = []
    fell_back = {_base(c) for c in calls if _FALLBACK.match(c)}     # its note would say what did not happen
    for c in calls:
        b = _base(c)
        if b in NOTES and b not in seen and b not in fell_back:
            seen.append(b)
    central = [b for b in seen if NOTES[b][0] == 2] or seen
    notes = [NOTES[b][1] for b in central[:3]]
    bases = [_base(c) for c in calls]
    for (before, after), why in CONTEXT.items():
        if any(a == before and b == after for a, b in zip(bases, bases[1:])):
            notes.append(why)
    if notes:
        out.append(_sentence("; ".join(notes)))
    return out


def _fallback_sentences(calls: Sequence[str]) -> list[str]:
    """The first fallback (and how many others there were), cause from the trace point's name."""
    failed: list[str] = []
    fell: list[str] = []
    for c in dict.fromkeys(fold_calls(calls)):
        c = c.rpartition(" x")[0] if re.search(r" x\d+$", c) else c
        m = _FALLBACK.match(c)
        if m is None:
            continue
        fn, why, then = m.group("fn"), m.group("why"), m.group("then")
        if m.group("failed"):
            failed.append(f"{fn}({why})" if why else fn)
        elif then:
            instead = {"split": "split the entry and took the PTE path instead",
                       "fail": "gave up"}.get(then, f"did this instead: {then}")
            fell.append(f"{fn} fell back{f' because of: {why}' if why else ''}, and {instead}")
    if fell:
        text = fell[0] + (f" (after {_join(failed)} failed)" if failed else "")
        more = f"; {len(fell) - 1} more fallback(s) in this step" if len(fell) > 1 else ""
        return [_sentence(text + more)]
    if failed:
        return [_sentence(f"{_join(failed)} failed, so the kernel took the smaller path")]
    return []


def _desc(d: PmdDesc) -> str:
    if d.kind == "table":
        tally: dict[str, int] = {}
        for r in d.runs:
            tally[r.kind] = tally.get(r.kind, 0) + r.n
        parts = [f"{n} {kind}" for kind, n in tally.items() if kind != "none"]
        return "a PTE table (" + (", ".join(parts) or "all none") + ")"
    if d.kind == "swap":
        return "a PMD swap entry (" + d.text().removeprefix("swap ") + ")"
    if d.kind == "none":
        return "nothing"
    return d.text()


def _entry_sentences(view: "StepView") -> list[str]:
    parts: list[str] = []
    for pid in view.new_pids:
        parts.append(f"pid {pid} appeared")
    for pid in view.gone_pids:
        parts.append(f"pid {pid} went away")
    for v in view.vmas:
        if v["old"] is not None and v["new"] is not None:
            parts.append(f"in pid {v['pid']} the VMA at {view.vma_label(v)} went from {v['old']} to {v['new']}")
    for c in view.changes[:2]:
        n = "PMD" if c.count == 1 else f"{c.count} PMDs"
        old, new = c.old.descs[0], c.new.descs[0]
        if c.level == "pte":
            parts.append(_pte_sentence(view, c))
        elif (old.kind, old.label) == (new.kind, new.label):
            parts.append(f"in pid {c.pid} the {n} at {view.where(c)} still maps {_desc(new)}"
                         + _flag_change(old.text(), new.text()))
        else:
            parts.append(f"in pid {c.pid} the {n} at {view.where(c)} went from {_desc(old)} to {_desc(new)}")
    if len(view.changes) > 2:
        parts.append(f"{len(view.changes) - 2} more PMD range(s) changed")
    for s in view.swap:
        if s["before"] is None:
            parts.append(f"swap device {s['name']} was added")
        elif s["after"] is None:
            parts.append(f"swap device {s['name']} was removed, {s['before']} slot(s) in use before")
        elif s["delta"]:
            verb = "taken" if s["delta"] > 0 else "freed"
            parts.append(f"{abs(s['delta'])} slot(s) of {s['name']} were {verb} ({s['before']} → "
                         f"{s['after']} in use)")
        else:
            parts.append(_count_change(s))
    return [_sentence("; ".join(parts))] if parts else []


#: The entry flags the views print (help legend), and what losing or gaining one means.
_FLAGS = {"W": "writable", "D": "dirty", "excl": "exclusive to this process", "sd": "soft-dirty",
          "uffd-wp": "userfaultfd write-protected"}


def _flag_change(old: str, new: str) -> str:
    """`, but it is no longer writable or exclusive` from the flag words of two descriptions."""
    before, after = set(old.split()), set(new.split())
    lost = [_FLAGS[f] for f in _FLAGS if f in before and f not in after]
    gained = [_FLAGS[f] for f in _FLAGS if f in after and f not in before]
    out = ""
    if lost:
        out += f", no longer {_join(lost, 'or')}"
        if "W" in before and "W" not in after:
            out += " (write-protected: the next write faults)"
    if gained:
        out += f"{', and' if lost else ','} now {_join(gained)}"
    return out


def _pte_sentence(view: "StepView", c: "PmdChange") -> str:
    """`in pid 1 PTE 3 of the PTE table at a+0x0 went from swap ... to present ...`."""
    ptes = c.ptes()
    p = ptes[0]
    idx = f"PTE {p['first']}" if p["first"] == p["last"] else f"PTEs {p['first']}-{p['last']}"
    table = "the PTE table" if c.count == 1 else f"each of the {c.count} PTE tables"
    more = f" ({len(ptes) - 1} more run(s) of its PTEs changed too)" if len(ptes) > 1 else ""
    head = f"in pid {c.pid} {idx} of {table} at {view.where(c)}"
    if _unflagged(p["old"]) == _unflagged(p["new"]):
        return f"{head} still {'holds' if idx.startswith('PTE ') else 'hold'} {_unflagged(p['new'])}" \
            + _flag_change(p["old"], p["new"]) + more
    return f"{head} went from {p['old']} to {p['new']}{more}"


def _unflagged(text: str) -> str:
    """An entry's words without its flags (help legend): what it maps or where it is swapped."""
    return " ".join(w for w in text.split() if w not in _FLAGS)


def _count_change(s: dict) -> str:
    """A device whose slots stayed in use but whose swap counts (or cache bits) changed."""
    both = [c for c in s["slots"] if c["old"] is not None and c["new"] is not None]
    if not both:
        return f"the swap counts of {s['name']}'s slots changed (still {s['after']} in use)"
    c, was, now = both[0], both[0]["old"], both[0]["new"]
    cache = {(False, True): ", now held by the swap cache (+cache)",
             (True, False): ", no longer held by the swap cache"}.get((was["cache"], now["cache"]), "")
    more = f"; {len(both) - 1} more slot range(s) changed too" if len(both) > 1 else ""
    return (f"the swap count of {s['name']} {slots_text(c['first'], c['last'])} went {was['count']} → "
            f"{now['count']}{cache} (still {s['after']} in use){more}")


def _moved(view: "StepView") -> list[_Moved]:
    return ([_Moved("vmstat", n, d) for n, d in view.vmstat.items()]
            + [_Moved("mthp", n, d) for n, d in view.mthp.items()])


def _counter_sentences(view: "StepView") -> list[str]:
    key, restating = [], []
    for m in _moved(view):
        doc = family_doc(m.family, m.name)
        label = f"{m.name} {m.delta:+d}" if m.family == "vmstat" else f"mthp {m.name} {m.delta:+d}"
        if doc is None:
            key.append(label)
        elif doc.key:
            key.append(f"{label}: {doc.what}")
        else:
            restating.append(m.name if m.family == "vmstat" else f"mthp {m.name}")
    out = []
    if key:
        out.append(_sentence("Counters: " + "; ".join(key)))
    if restating:
        out.append(_sentence("Also moved, restating those: " + _join(restating)
                             + " (help COUNTER says what each counts)"))
    return out


def explain_step(cmd: "Command", calls: Sequence[str], view: "StepView | None", error: str | None = None,
                 output: Sequence[str] = (), kind: str = "ok") -> list[str]:
    """The sentences for one step (`kind` as its StepRecord's): its kernel path, a fallback
    and its cause, the entries and slots that changed, and every counter that moved."""
    inner = unwrap(cmd)
    if kind == "expect-failed":
        return [f"`{cmd.text or cmd}` only reads the machine, and what it read is not what it expected.",
                "A failed expectation changes nothing; the script goes on and ends with exit status 1."]
    if error is not None:
        m = re.search(r"\bE[A-Z0-9]+: .*", error)
        why = m.group(0) if m else error
        return [_sentence(f"The command was refused ({why})"),
                "A refused command changes nothing: the machine is exactly as it was before it."]
    out: list[str] = []
    if calls:
        out += _path_sentences(calls)
        out += _fallback_sentences(calls)
    if view is not None and not view.empty:
        out += _entry_sentences(view)
        out += _counter_sentences(view)
    if out:
        return out
    return _quiet_sentences(cmd, inner, output)


def _quiet_sentences(cmd: "Command", inner: "Command", output: Sequence[str]) -> list[str]:
    """A step that ran no kernel function and changed nothing that a step view shows."""
    name = inner.name
    if name == "set":
        setting = inner.args["setting"]
        display = setting not in setting_names() or setting_spec(setting).display
        return [f"`{cmd.text or cmd}` changed a {'display setting' if display else 'setting'}, not memory "
                f"(help {setting} says what it does).",
                "No page, entry or counter moved; the next steps " + ("are shown accordingly." if display
                                                                       else "behave accordingly.")]
    if cmd.name == "if" and inner is cmd:
        return ["The condition did not hold, so the command did not run: nothing changed."]
    if name in QUIET:
        return [f"`{cmd.text or cmd}` {QUIET[name]}: no kernel path ran.",
                "No page-table entry, swap slot or counter moved."]
    return [f"`{cmd.text or cmd}` went through no kernel function that moves memory, and nothing that a "
            "step shows changed.", "No page-table entry, swap slot or counter moved."]


def _sentence(text: str) -> str:
    """A capital first letter, unless the sentence starts with a kernel name; a full stop."""
    first = text.split(" ", 1)[0]
    if text and not any(ch in first for ch in "_()."):
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _join(names: list[str], word: str = "and") -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {word} " + names[-1]
