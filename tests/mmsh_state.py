"""A full, comparable dump of a machine's state, for "a refused command changes nothing".

`state_dump(session)` captures everything that is part of the simulated
machine and of the session on top of it: configuration (fault points too),
every process (VMAs, page tables entry by entry, counters), the mem_map
arrays, the frame allocator, every swap device (swap_map bytes, continuation,
zeromap, zswap, contents, cache, clusters), the swap cache, the LRU in order,
vmstat, the shadow of page contents, the pid and anon_vma counters, and the
session's current pid and region names.  Not captured: the trace log of the
last step (reset by every step) and the tracing switch's output.

Dumps are plain tuples, dicts, ints and bytes: `==` compares them, and
`diff_dumps(a, b)` names the first differences readably.
"""

from __future__ import annotations

from typing import Any


def _pmd(pmd) -> tuple:
    table = pmd.table.ptes.tobytes() if pmd.table is not None else None
    return (pmd.kind.value, pmd.flags, pmd.pfn, pmd.swp_type, pmd.swp_offset, pmd.deposited, table)


def _mm(mm) -> dict[str, Any]:
    return {
        "parent": mm.parent,
        "vmas": [(v.start, v.end, int(v.flags), v.pgoff, v.anon_vma, tuple(v.anon_vma_chain), v.avc_seq) for v in mm.vmas],
        "pmds": {i: _pmd(p) for i, p in sorted(mm.pmds.items())},
        "rss_anon": mm.rss_anon,
        "rss_swapents": mm.rss_swapents,
        "nr_ptes": mm.nr_ptes,
        "on_mmlist": mm.on_mmlist,
    }


def _swap(si) -> dict[str, Any]:
    return {
        "type": si.type, "name": si.name, "kind": si.kind.value, "prio": si.prio, "pages": si.pages,
        "swap_map": bytes(si.swap_map), "cont": dict(sorted(si.cont.items())),
        "cont_pages": sorted(si.cont_pages), "zeromap": bytes(si.zeromap), "zswap": bytes(si.zswap),
        "data": si.data.tobytes(), "cache": dict(si.cache.items()),
        "cluster_used": si.cluster_used.tobytes(), "cluster_order": bytes(si.cluster_order),
        "free_clusters": si.free_list(), "cluster_frag": bytes(si.cluster_frag),
        "next_order0": si.next_order0,
        "inuse_pages": si.inuse_pages, "full_clusters": si.full_clusters(), "reclaim_work": si.reclaim_work,
    }


def _config(cfg) -> dict[str, Any]:
    return {
        "pmd_swap": cfg.pmd_swap, "thp": cfg.thp.value, "zswap": cfg.zswap, "ram": cfg.ram,
        "use_zero_page": cfg.use_zero_page, "max_ptes_swap": cfg.max_ptes_swap,
        "max_ptes_none": cfg.max_ptes_none, "max_ptes_shared": cfg.max_ptes_shared,
        "deposit": cfg.deposit.value,
        "fail": {p.value: m.value for p, m in sorted(cfg.fail.items(), key=lambda kv: kv[0].value)},
    }


def kernel_dump(k) -> dict[str, Any]:
    mem = k.mem
    alloc = mem.alloc
    return {
        "config": _config(k.config),
        "mms": {pid: _mm(mm) for pid, mm in sorted(k.mms.items())},
        "next_pid": k.next_pid,
        "next_anon_vma": k.next_anon_vma,
        "next_avc_seq": k.next_avc_seq,
        "write_seq": k.write_seq,
        "zswap_ever_enabled": k.zswap_ever_enabled,
        "tracing": k.tracing,
        "pte_tables_allocated": k.pte_tables_allocated,
        "zero_pfn": k.zero_pfn,
        "huge_zero_pfn": k.huge_zero_pfn,
        "mem": {
            "nr_frames": mem.nr_frames,
            "flags": mem.flags.tobytes(), "order": bytes(mem.order), "mapcount": mem.mapcount.tobytes(),
            "entire_mapcount": mem.entire_mapcount.tobytes(), "index": mem.index.tobytes(),
            "anon_vma": mem.anon_vma.tobytes(), "data": mem.data.tobytes(),
        },
        "alloc": {
            "nr_free": alloc.nr_free, "free": bytes(alloc._free), "block_free": list(alloc._block_free),
            # the heaps may hold stale entries; what matters is which blocks they can still offer
            "whole": sorted(b for b in set(alloc._whole) if alloc._block_free[b] == 512),
            "partial": sorted(b for b in set(alloc._partial) if 0 < alloc._block_free[b] < 512),
        },
        "swap_info": [None if si is None else _swap(si) for si in k.swap_info],
        "swap_prio_order": list(k.swap_prio_order),
        "least_priority": k.least_priority,
        "folio_swap": {pfn: (e.type, e.offset) for pfn, e in sorted(k.folio_swap.items())},
        "lru": (k.lru.inactive(), k.lru.active()),
        "vmstat": {
            "events": dict(k.vmstat.events), "mthp": dict(k.vmstat.mthp),
            "nr_anon_pages": k.vmstat.nr_anon_pages, "nr_anon_thps": k.vmstat.nr_anon_thps,
            "nr_swapcached": k.vmstat.nr_swapcached,
        },
        "shadow": {pid: {i: c.tobytes() for i, c in sorted(chunks.items())}
                   for pid, chunks in sorted(k.shadow.procs.items())},
        "shadow dropped": {pid: {i: c.tobytes() for i, c in sorted(chunks.dropped.items())}
                           for pid, chunks in sorted(k.shadow.procs.items()) if chunks.dropped},
    }


def state_dump(session) -> dict[str, Any]:
    """Everything meaningful about a session: its machine, current pid and region names."""
    return {
        "kernel": kernel_dump(session.kernel),
        "pid": session.pid,
        "regions": {pid: dict(sorted(names.items())) for pid, names in sorted(session.regions.items())},
    }


def diff_dumps(a: Any, b: Any, path: str = "", limit: int = 12) -> list[str]:
    """Readable differences between two dumps (at most `limit`)."""
    out: list[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if len(out) >= limit or x == y:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(x.keys() | y.keys(), key=repr):
                if key not in x:
                    out.append(f"{where}.{key}: added")
                elif key not in y:
                    out.append(f"{where}.{key}: removed")
                else:
                    walk(x[key], y[key], f"{where}.{key}")
            return
        if isinstance(x, (bytes, bytearray)) and isinstance(y, (bytes, bytearray)) and len(x) == len(y):
            first = next(i for i in range(len(x)) if x[i] != y[i])
            out.append(f"{where}: differs from byte {first} ({x[first]} -> {y[first]})")
            return
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)) and len(x) == len(y):
            for i, (p, q) in enumerate(zip(x, y)):
                walk(p, q, f"{where}[{i}]")
            return
        text = f"{where}: {x!r:.80} -> {y!r:.80}"
        out.append(text)

    walk(a, b, path or "state")
    return out
