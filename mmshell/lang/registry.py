"""The one registry of .mmsh commands and settings.

:data:`COMMANDS` drives the parser, ``help``, completion and the docs (the
shape of drgn's ``drgn/commands`` and pgspecial's registry).  Look-ups:
:func:`command` (by ``Command.name``), :func:`match` (by the words of a
line), :func:`first_words` / :func:`next_words` (what can start a command),
:func:`by_group`, :func:`help_topics` and :func:`help_text`.  The settings
(``SettingSpec``, ``SETTINGS``, ``FAULT_POINTS``) are declared in
:mod:`.settings` and re-exported here.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..mm.mman import Madv
from ..mm.swap_info import SwapKind
from ..mm.vma import VM
from ..notation import map_legend
from .grammar import Arg, CommandSpec, Flags, Grammar, Group, Kind, Nests, Option, Switch
from .display import DISPLAY_WORDS, MAX_DISPLAY
from .settings import FAULT_POINT_HELP, FAULT_POINTS, SETTINGS, SettingSpec, setting, setting_names
from .values import RESERVED_WORDS

__all__ = [
    "COMMANDS", "SETTINGS", "FAULT_POINTS", "RESERVED_WORDS", "SettingSpec", "CommandSpec",
    "PROTS", "ADVICES", "VIEWS", "LIVE_VIEWS", "SWAP_KINDS", "OPS", "command", "setting", "setting_names",
    "match", "first_words", "next_words", "by_group", "help_topics", "help_text",
    "PROT_FLAGS", "ADVICE", "unwrap", "only_looks", "checks_first", "shows_changes", "live_refusal",
    "changes_vmas",
]

#: The language's words for the kernel's values (the one place they are paired): a `prot`
#: word -> the vm_flags mprotect and mmap set, an advice word -> its MADV_* value.  The word
#: lists below are derived from them.
PROT_FLAGS: dict[str, VM] = {"rw": VM.READ | VM.WRITE, "r": VM.READ, "none": VM(0)}
ADVICE: dict[str, Madv] = {"hugepage": Madv.MADV_HUGEPAGE, "nohugepage": Madv.MADV_NOHUGEPAGE,
                           "pageout": Madv.MADV_PAGEOUT, "cold": Madv.MADV_COLD, "free": Madv.MADV_FREE,
                           "dontneed": Madv.MADV_DONTNEED, "collapse": Madv.MADV_COLLAPSE}
PROTS = tuple(PROT_FLAGS)
#: The advice words that set vm_flags (hugepage_madvise()): the only ones that change VMAs.
THP_ADVICES = ("hugepage", "nohugepage")
ADVICES = tuple(ADVICE)
SWAP_KINDS = tuple(k.value for k in SwapKind)
OPS = ("==", "!=", "<", "<=", ">", ">=")

_RANGE = Arg("range", Kind.RANGE, "RANGE")
_OPT_RANGE = Arg("range", Kind.RANGE, "RANGE", optional=True)
_AT = Option("at", "at", Arg("at", Kind.ADDR, "ADDR"))
_NESTED = Arg("command", Kind.COMMAND, "COMMAND")
PID_MAX = 4194304  # PID_MAX_LIMIT on 64-bit


#: `set display VIEW...`: one word, then up to MAX_DISPLAY - 1 more (lang/display.py).
_DISPLAY = Grammar((Arg("value", Kind.ENUM, "VIEW", choices=DISPLAY_WORDS),)
                   + tuple(Arg(f"more{i}", Kind.ENUM, "VIEW", choices=DISPLAY_WORDS, optional=True)
                           for i in range(1, MAX_DISPLAY)))


def _pid(optional: bool = False) -> Arg:
    return Arg("pid", Kind.PID, "PID", optional=optional, minimum=1, maximum=PID_MAX)


#: The PATH forms of `expect` (the contract's table), upper-case parts placeholders:
#: `help expect` lists them and the shell completes them part by part.
EXPECT_PATHS = ("vmstat.NAME", "mthp.NAME", "smaps.NAME.FIELD", "pmd.ADDR", "pte.ADDR", "pagemap.ADDR.FIELD",
                "swap.NAME.used", "swapmap.NAME.OFFSET", "swapcache.NAME.OFFSET", "meminfo.FIELD", "pid")


def _wrap_paths(width: int = 80) -> str:
    """EXPECT_PATHS as help text, wrapped before `width` columns."""
    lines, line = [], "PATH:"
    for i, p in enumerate(EXPECT_PATHS):
        word = p + ("," if i + 1 < len(EXPECT_PATHS) else "")
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line += " " + word
    return "\n".join(lines + [line]).removeprefix("PATH: ")


def _spec(name: str, words: str, group: Group, summary: str, help: str,
          *positionals: Arg | Switch, options: tuple[Option | Flags, ...] = (),
          synopsis: str | None = None, examples: tuple[str, ...] = (), glued: bool = False,
          read_only: bool = False, acts_with: str = "", nests: Nests = Nests.NO,
          live: bool | str = True, checks_first: bool = False,
          maps: bool | tuple[str, tuple[str, ...]] = False) -> CommandSpec:
    grammar = Grammar(tuple(positionals), options)
    head = words.split()
    if synopsis is None:
        synopsis = " ".join(head + ([grammar.usage()] if grammar.usage() else []))
    return CommandSpec(name, tuple(head), synopsis, summary, help, group, grammar, glued, examples,
                       read_only=read_only, acts_with=acts_with, nests=nests, live=live,
                       checks_first=checks_first, maps=maps)


_S, _P, _M, _V, _X = Group.SETUP, Group.PROCESS, Group.MEMORY, Group.VIEW, Group.SCRIPT

COMMANDS: tuple[CommandSpec, ...] = (
    _spec("set", "set", _S, "change a machine setting (help SETTING for each)",
          "Settings: " + ", ".join(s.name for s in SETTINGS) + ".\n"
          "Each models a sysfs knob or a kernel build choice; see help pmd_swap, help fail ...\n"
          "set display VIEW... chooses what is drawn after each step (help display).",
          Switch("setting", "SETTING",
                 tuple((s.name, s.grammar()) for s in SETTINGS) + (("display", _DISPLAY),),
                 "setting"),
          synopsis="set SETTING VALUE",
          examples=("set pmd_swap off", "set thp always", "set zswap on", "set ram 64M",
                    "set fail thp_alloc once", "set max_ptes_swap 0", "set display map summary",
                    "set display none")),
    _spec("swapon", "swapon", _S, "add a swap device",
          "sys_swapon: the device gets a swap_map and 2 MB clusters. zram is synchronous\n"
          "(SWP_SYNCHRONOUS_IO: swap-in bypasses the swap cache); disk is asynchronous (the\n"
          "folio stays in the swap cache after writeback); file cannot allocate a whole\n"
          "cluster, so every THP swap-out falls back (THP_SWPOUT_FALLBACK).",
          Arg("name", Kind.NAME, "NAME"), Arg("size", Kind.SIZE, "SIZE"),
          options=(Option("kind", "kind", Arg("kind", Kind.ENUM, choices=SWAP_KINDS, default="zram")),
                   Option("prio", "prio", Arg("prio", Kind.INT, "N", minimum=-32768, maximum=32767))),
          examples=("swapon s0 1G", "swapon s1 64M kind disk prio -2", "swapon f 8M kind file")),
    _spec("swapoff", "swapoff", _S, "bring every page on a device back in and remove it",
          "sys_swapoff > try_to_unuse > unuse_mm > unuse_pmd / unuse_pte_range: every swap\n"
          "entry that points at the device is swapped in, then the device goes away.",
          Arg("name", Kind.NAME, "NAME", refers="device"), examples=("swapoff s0",)),
    _spec("fork", "fork", _P, "fork the current process; the parent stays current",
          "copy_page_range > copy_huge_pmd / copy_nonpresent_pte: present pages become\n"
          "COW-shared, swap entries are duplicated (swap_duplicate). Prints the child's pid.",
          examples=("fork",), maps=True),
    _spec("switch", "switch", _P, "make PID the current process",
          "Only changes which mm the following commands act on.",
          _pid(), examples=("switch 2",), read_only=True),
    _spec("at", "@", _P, "run one command in process PID",
          "Runs COMMAND as if PID were current, then switches back.",
          _pid(), _NESTED, synopsis="@PID COMMAND", glued=True,
          examples=("@2 touch a", "@1 show vmas"), nests=Nests.RUNS),
    _spec("exit", "exit", _P, "the process exits (default: the current one)",
          "exit_mmap > unmap_vmas > zap_huge_pmd / zap_pte_range: the whole address space is\n"
          "torn down, swap entries freed (free_swap_and_cache). pid 1 cannot exit.",
          _pid(optional=True), examples=("exit", "exit 2"), maps=True),
    _spec("mmap", "mmap", _M, "map private anonymous memory as region NAME",
          "do_mmap of MAP_PRIVATE|MAP_ANONYMOUS; without 'at', 2M or more is placed 2 MB-aligned\n"
          "(thp_get_unmapped_area). hugepage/nohugepage apply MADV_HUGEPAGE/MADV_NOHUGEPAGE.\n"
          "Nothing is faulted in until touched.",
          Arg("name", Kind.NAME, "NAME"), Arg("size", Kind.SIZE, "SIZE"),
          options=(Option("prot", "prot", Arg("prot", Kind.ENUM, choices=PROTS, default="rw")),
                   Flags("advice", THP_ADVICES), _AT),
          examples=("mmap a 4M hugepage", "mmap b 2M prot r at 0x40000000", "mmap c 8K nohugepage"),
          maps=True),
    _spec("munmap", "munmap", _M, "unmap RANGE",
          "do_vmi_munmap: a partial PMD is split first (__split_huge_pmd), then the range is\n"
          "zapped (zap_pte_range, zap_huge_pmd) and its swap entries freed.",
          _RANGE, examples=("munmap a", "munmap a+2M:2M"), checks_first=True, maps=True),
    _spec("touch", "touch", _M, "access every page of RANGE (default: write)",
          "handle_mm_fault: do_anonymous_page / do_huge_pmd_anonymous_page for empty entries,\n"
          "do_swap_page / do_huge_pmd_swap_page for swap entries, do_wp_page for COW.\n"
          "A write stores fresh data in each page written.",
          _RANGE, options=(Flags("access", ("read", "write"), default="write"),),
          examples=("touch a", "touch a+2M:4K read", "touch 0x40000000")),
    _spec("check", "check", _M, "verify page contents (and, without RANGE, every invariant)",
          "With RANGE: read-fault every page and compare with what was last written.\n"
          "Without: verify every mapped page of every process without faulting, and run\n"
          "the invariant checker (CONFIG_DEBUG_VM).",
          _OPT_RANGE, examples=("check", "check a", "check a+2M:2M"), read_only=True, acts_with="range"),
    _spec("madvise", "madvise", _M, "madvise(RANGE, ADVICE)",
          "pageout: madvise_pageout > reclaim_pages > shrink_folio_list; cold: deactivate;\n"
          "free: lazyfree (madvise_free_pte_range); dontneed: zap_page_range_single;\n"
          "collapse: madvise_collapse > collapse_huge_page; hugepage/nohugepage: VM flags.",
          _RANGE, Arg("advice", Kind.ENUM, "ADVICE", choices=ADVICES),
          examples=("madvise a pageout", "madvise a+2M:2M dontneed", "madvise a collapse"),
          maps=("advice", THP_ADVICES)),
    _spec("mprotect", "mprotect", _M, "change the protection of RANGE",
          "mprotect_fixup > change_protection > change_huge_pmd / change_pte_range.",
          _RANGE, Arg("prot", Kind.ENUM, "PROT", choices=PROTS),
          examples=("mprotect a r", "mprotect a+2M:4K none"), maps=True),
    _spec("mremap", "mremap", _M, "move RANGE to a new region NEWNAME",
          "mremap(MREMAP_MAYMOVE, and MREMAP_FIXED with 'at'): move_vma > move_page_tables >\n"
          "move_huge_pmd / move_ptes. size SIZE gives the new length.",
          _RANGE, Arg("newname", Kind.NAME, "NEWNAME"),
          options=(Option("size", "size", Arg("size", Kind.SIZE, "SIZE")), _AT),
          examples=("mremap a b", "mremap a+2M:2M c size 4M at 0x80000000"), maps=True),
    _spec("uffd_register", "uffd register", _M, "register RANGE with a userfaultfd",
          "UFFDIO_REGISTER (MISSING mode): needed for RANGE to be a UFFDIO_MOVE destination.",
          _RANGE, examples=("uffd register b",), maps=True),
    _spec("uffd_move", "uffd move", _M, "UFFDIO_MOVE SRC_RANGE to DST_ADDR",
          "move_pages > move_pages_huge_pmd for whole PMDs, move_pages_pte otherwise;\n"
          "the pages (present or swapped) change owner without copying.",
          Arg("src", Kind.RANGE, "SRC_RANGE"), Arg("dst", Kind.ADDR, "DST_ADDR"),
          examples=("uffd move a:2M b", "uffd move a+2M:4K b+0x1000")),
    _spec("reclaim", "reclaim", _M, "global reclaim of SIZE (default: everything reclaimable)",
          "try_to_free_pages > shrink_node > shrink_folio_list in LRU order:\n"
          "folio_alloc_swap, try_to_unmap > try_to_unmap_one, pageout > swap_writepage.",
          Arg("size", Kind.SIZE, "SIZE", optional=True), examples=("reclaim", "reclaim 2M")),
    _spec("khugepaged", "khugepaged", _M, "one full khugepaged pass over every process",
          "khugepaged_scan_mm_slot > hpage_collapse_scan_pmd > collapse_huge_page, within\n"
          "max_ptes_none / max_ptes_swap / max_ptes_shared.",
          examples=("khugepaged",)),
    _spec("show", "show", _V, "show a view of the machine",
          "vmas: /proc/PID/maps with flags; pt: the page table per PMD; map: each PMD as a\n"
          "grid of its 512 pages, one letter per page (help notation); swap: devices and\n"
          "swap_map (NAME: one device; map: one strip per cluster, one glyph per slot);\n"
          "swapcache: cached folios; vmstat: non-zero counters (all: every one);\n"
          "smaps: Rss, AnonHugePages, Swap, SwapPss; pagemap: /proc/PID/pagemap; meminfo;\n"
          "walks: page-table entries each walker visited (simulator counts).",
          Switch("view", "VIEW", (
              ("vmas", Grammar()), ("pt", Grammar((_OPT_RANGE,))), ("map", Grammar((_OPT_RANGE,))),
              ("swap", Grammar((Arg("name", Kind.NAME, "NAME", optional=True, refers="device"),),
                               (Flags("map", ("map",), boolean=True),))),
              ("swapcache", Grammar()),
              ("vmstat", Grammar(options=(Flags("all", ("all",), boolean=True),))),
              ("smaps", Grammar((Arg("name", Kind.NAME, "NAME", optional=True, refers="region"),))),
              ("pagemap", Grammar((_RANGE,))), ("meminfo", Grammar()), ("walks", Grammar())), "view"),
          synopsis="show VIEW [ARGS]",
          examples=("show vmas", "show pt", "show pt a+2M:2M", "show map", "show map a", "show swap s0 map",
                    "show swap", "show swapcache", "show vmstat", "show vmstat all", "show smaps",
                    "show smaps a", "show pagemap a:8K", "show meminfo", "show walks"), read_only=True),
    _spec("trace", "trace", _V, "print the kernel functions each step goes through",
          "e.g. shrink_folio_list > folio_alloc_swap(order=9) > try_to_unmap_one >\n"
          "set_pmd_swap_entry.",
          Arg("on", Kind.BOOL, "on|off"), examples=("trace on", "trace off"), read_only=True,
          live="tracing the kernel functions a step goes through needs ftrace, which the live "
               "runner does not drive"),
    _spec("export", "export", _V, "write the last step (or every step: session) as a picture",
          "svg, html, txt: the last step as drawn, at 100 columns in a light theme, to FILE\n"
          "(for slides and web pages). session FILE: every step so far (the last 200 in a\n"
          "script run), in the format FILE's suffix names (.svg, .html, .txt).",
          Switch("what", "svg|html|txt|session", tuple((w, Grammar((Arg("path", Kind.FILE, "FILE"),)))
                                                      for w in ("svg", "html", "txt", "session")), "format"),
          synopsis="export svg|html|txt|session FILE",
          examples=("export svg step.svg", "export txt step.txt", "export session talk.html"),
          read_only=True, live="export writes the steps the shell drew; the live runner prints its "
                               "steps and keeps no pictures of them"),
    _spec("explain", "explain", _V, "after each step, say in plain words what the kernel did",
          "2-6 sentences built from the step itself: the kernel functions it went through and\n"
          "what they do, a fallback and its cause, the entries and swap slots that changed,\n"
          "and every counter that moved with what it counts (help COUNTER for one).",
          Arg("on", Kind.BOOL, "on|off"), examples=("explain on", "explain off"), read_only=True,
          live="explain is built from the simulator's trace points; the live runner cannot see "
               "which kernel functions a step went through"),
    _spec("timing", "timing", _V, "after each step, print the time it took",
          "Like psql's \\timing and sqlite's .timer: after each step, its wall time\n"
          "(running the command; drawing its output not counted), e.g. `time: 1.234 ms`.\n"
          "mmshell run --json gives every step's time as `ms` whether timing is on or off.",
          Arg("on", Kind.BOOL, "on|off"), examples=("timing on", "timing off"), read_only=True),
    _spec("if", "if", _X, "run COMMAND only when a setting has VALUE",
          "if pmd_swap on: expect pmd.a == swap",
          Switch("setting", "SETTING", tuple((s.name, s.grammar(then=":"))
                                             for s in SETTINGS if s.name != "fail"), "setting"),
          _NESTED, synopsis="if SETTING VALUE: COMMAND",
          examples=("if pmd_swap on: expect pmd.a == swap", "if thp never : show vmas"), nests=Nests.RUNS),
    _spec("expect", "expect", _X, "check PATH OP VALUE; a failure is reported, not refused",
          f"PATH: {_wrap_paths()}. OP: == != < <= > >=. VALUE is one word (2048, 2048kB, swap).",
          Arg("path", Kind.PATH, "PATH"), Arg("op", Kind.ENUM, "OP", choices=OPS),
          Arg("value", Kind.WORD, "VALUE"),
          examples=("expect vmstat.thp_swpout == 1", "expect smaps.a.AnonHugePages == 2048kB",
                    "expect pagemap.a+0x1000.swap_offset == 0x200", "expect pid == 1"), read_only=True),
    _spec("expect_fails", "expect fails", _X, "pass when COMMAND is refused with an error",
          "A refused command changes nothing. A COMMAND that does not parse is refused too\n"
          "(the rest of the script is still parsed first). 'expect fails expect ...' passes\n"
          "only when the inner expectation is itself an error, not merely false. 'expect\n"
          "fails source FILE' passes when FILE cannot be read or parsed, or one of its\n"
          "commands is refused (then what its commands did is undone).",
          Arg("command", Kind.COMMAND, "COMMAND", tolerant=True),
          examples=("expect fails munmap 0x1000", "expect fails expect vmstat.nope == 1",
                    "expect fails mmpa a 2M"), read_only=True, nests=Nests.REFUSAL),
    _spec("help", "help", _X, "list the commands, or explain one command, setting or topic",
          "help; help mmap; help uffd move; help pmd_swap; help fail; help sizes.",
          Arg("topic", Kind.TOPIC, "TOPIC", optional=True), examples=("help", "help mmap"), read_only=True),
    _spec("source", "source", _X, "run the commands of FILE here",
          "FILE is one word: no spaces, ';' or '#'.",
          Arg("path", Kind.FILE, "FILE"), examples=("source setup.mmsh",)),
    _spec("pause", "pause", _X, "a stop point for a demo (does nothing when a script just runs)",
          "'mmshell run --step' and '--step=pause' stop here and print TEXT, and so does\n"
          "'mmshell present'. A comment line that starts with '#:' is narration: run --step\n"
          "and present show it with the command after it.",
          Arg("text", Kind.TEXT, "TEXT", optional=True),
          examples=("pause", "pause now the PMD is a swap entry"), read_only=True),
)

_BY_NAME = {spec.name: spec for spec in COMMANDS}
#: The views `show` draws, as its grammar names them.
VIEWS: tuple[str, ...] = _BY_NAME["show"].grammar.positionals[0].choices
#: The live trait of each view `show` draws (and of `show swap NAME map`): True, or why the live
#: kernel cannot feed it (the live `show` refuses with that reason).
LIVE_VIEWS: dict[str, bool | str] = {
    **dict.fromkeys(VIEWS, True),
    "swapcache": "the swap cache is not exported: which slots it holds cannot be listed from user space "
                 "(swapcache.NAME.OFF asks mincore() about one slot through a mapping of it)",
    "walks": "walker visit counts are the simulator's own tally; the kernel keeps none",
    "swap map": "swap_map is not exported by the kernel: 'show swap NAME map' exists only in the simulator",
}

TOPICS: dict[str, str] = {
    "sizes": "A plain integer is bytes; 0x hex is allowed. K M G T P (also KB.., KiB..) are\n"
             "binary units (2M = 2097152); kB and k are 1024 as in /proc. Whole numbers only.",
    "addresses": "An address is an integer (0x40000000) or NAME / NAME+OFFSET, NAME a region\n"
                 "from mmap or mremap, OFFSET a size (a+2M, a+0x1000) or sizes added and\n"
                 "subtracted (a+2M+0x11000, a+2M-4K), at least 0. NAME-OFFSET is refused.",
    "ranges": "ADDR:LEN (a+2M:4K, 0x40000000:2M); a bare NAME is the whole region; a bare\n"
              "address is the one page that holds it.",
    "names": "Names are [A-Za-z_][A-Za-z0-9_]*, case-sensitive, at most 64 characters; these\n"
             "words are reserved: " + ", ".join(sorted(RESERVED_WORDS)) + ".",
    "settings": "\n".join(s.usage for s in SETTINGS) + "\nset display VIEW...",
    "display": "set display VIEW...|summary|none: what is drawn after every step that may change\n"
               "the machine, like gdb's display (default: summary, the step summary). VIEW is\n"
               "map, swapmap (show swap map), pt, swap, swapcache, vmstat, smaps, meminfo or vmas,\n"
               f"for the current process; up to {MAX_DISPLAY} words. map marks the cells the step changed.\n"
               "none draws nothing. Example: set display map summary",
    "notation": "How the views write what they show:\n"
                "  pfn 0x200..0x3ff      page frames (physical pages), hex, two dots\n"
                "  slots 0x200-0x3ff     swap slots: offsets on a swap device, hex, a dash\n"
                "                        (`slot 0x204` for one); the same in every view, and what\n"
                "                        swapmap.NAME.OFFSET and pagemap's swap_offset count\n"
                "  s0 slots ...          the device the slots are on\n"
                "  0-511                 PTE indices inside one page table\n"
                "  a+0x200000            an address, after the region mapped there now\n"
                "  4 × huge              4 neighbouring PMDs alike, folded into one row\n"
                "  A … B                 a folded row's first and last PMD (not one range)\n"
                "  old → new             what a step changed\n"
                "  W D                   writable, dirty\n"
                "  excl                  exclusive to this process (PageAnonExclusive, or the\n"
                "                        swap entry's exclusive bit)\n"
                "  sd, uffd-wp           soft-dirty, userfaultfd write-protected\n"
                "  (THP), (order N)      a PTE maps part of a large folio\n"
                "  count N, +cache, free swap_map count, SWAP_HAS_CACHE; an unused slot\n"
                "  slots A-B: old → new  swap_map slots a step changed (count N, +cache, free)\n"
                "  PTE 3: old → new      a PTE a step changed in a table (PTEs 0-2: a run)\n"
                "  unmapped → rw-p       a VMA a step mapped (→ unmapped: one it unmapped)\n"
                "show map draws each PMD as 16 rows of 32 cells, one per 4K page:\n" + map_legend(),
}


def unwrap(cmd: Any, into_refusal: bool = False) -> Any:
    """The command a step runs: ``cmd`` itself, or the COMMAND inside its `@PID` and `if`
    (with ``into_refusal``, inside `expect fails` too).  Stops at an unparsed COMMAND."""
    while True:
        nests = _BY_NAME[cmd.name].nests if cmd.name in _BY_NAME else Nests.NO
        inner = cmd.args.get("command")
        if inner is None or inner.name not in _BY_NAME or not (
                nests is Nests.RUNS or (into_refusal and nests is Nests.REFUSAL)):
            return cmd
        cmd = inner


#: The cases of `set` and `show` the live kernel cannot do, with why (beside the commands'
#: ``live`` and the settings' ``live``): each is refused there before a handler runs.
LIVE_SET_DISPLAY = ("'set display' chooses what mmshell run and the shell draw after each step; "
                    "the live runner prints each step's changes")


def live_refusal(cmd: Any) -> str | None:
    """Why the live kernel cannot run ``cmd`` itself (not what it nests), or None: the
    command's ``live`` trait, `set display`, a setting's ``live``, a view of LIVE_VIEWS."""
    spec = _BY_NAME[cmd.name]
    if spec.live is not True:
        return str(spec.live)
    a = cmd.args
    if cmd.name == "set":
        if a["setting"] == "display":       # a grammar case of `set`, not a setting
            return LIVE_SET_DISPLAY
        live = setting(a["setting"]).live
        return None if live is True else str(live)
    if cmd.name == "show":
        live_view = LIVE_VIEWS["swap map" if a["view"] == "swap" and a.get("map") else a["view"]]
        return None if live_view is True else str(live_view)
    return None


def only_looks(cmd: Any) -> bool:
    """Whether a step only looks at the machine (no snapshot, no counters, no step summary)."""
    inner = unwrap(cmd)
    return _BY_NAME[inner.name].only_looks(inner.args)


def checks_first(cmd: Any) -> bool:
    """Whether a step refuses only before it changes the machine (CommandSpec.checks_first of
    what it runs, through `@PID` and `if`, which refuse before they run it): no checkpoint."""
    return _BY_NAME[unwrap(cmd).name].checks_first


def changes_vmas(cmd: Any) -> bool:
    """Whether a step can change the VMAs of a process (CommandSpec.maps of what it runs,
    through `@PID`, `if` and `expect fails`, whose COMMAND acts when it is not refused)."""
    inner = unwrap(cmd, into_refusal=True)
    maps = _BY_NAME[inner.name].maps
    if isinstance(maps, tuple):
        key, values = maps
        return inner.args.get(key) in values
    return maps


def shows_changes(cmd: Any) -> bool:
    """Whether a step summary follows the command: what it runs (through `@PID` and `if`)
    may change the machine.  `check RANGE` reads through the fault path, so it may; a
    bare `check` only looks."""
    inner = unwrap(cmd)
    spec = _BY_NAME[inner.name]
    return not spec.quiet or bool(spec.acts_with and inner.args.get(spec.acts_with) is not None)


def command(name: str) -> CommandSpec:
    """The spec for ``Command.name``; ``KeyError`` if there is none."""
    return _BY_NAME[name]


def match(words: Sequence[str]) -> tuple[CommandSpec | None, int]:
    """The command whose words start ``words`` (longest match) and how many words it used."""
    best: CommandSpec | None = None
    for spec in COMMANDS:
        n = len(spec.words)
        if tuple(words[:n]) == spec.words and (best is None or n > len(best.words)):
            best = spec
    return best, len(best.words) if best else 0


def first_words() -> tuple[str, ...]:
    """Every word that can start a command, in registry order (``@`` included)."""
    return tuple(dict.fromkeys(spec.words[0] for spec in COMMANDS))


def next_words(prefix: Sequence[str]) -> tuple[str, ...]:
    """The words that can follow ``prefix`` inside a command's keywords.

    ``next_words(["uffd"])`` is ``("register", "move")``; ``next_words(["expect"])``
    is ``("fails",)``; ``next_words([])`` is :func:`first_words`.
    """
    n = len(prefix)
    return tuple(dict.fromkeys(spec.words[n] for spec in COMMANDS
                               if len(spec.words) > n and spec.words[:n] == tuple(prefix)))


def by_group() -> dict[Group, tuple[CommandSpec, ...]]:
    """The commands of each group, in registry order."""
    return {g: tuple(s for s in COMMANDS if s.group is g) for g in Group}


def help_topics() -> tuple[str, ...]:
    """Every topic ``help TOPIC`` accepts."""
    from .topics import teaching_topics     # the counter docs: read only for help

    words = [" ".join(s.words) for s in COMMANDS] + [w for w in first_words() if w not in _BY_NAME]
    return tuple(dict.fromkeys(words + list(setting_names()) + list(TOPICS) + list(teaching_topics())))


def help_text(topic: str | None = None) -> str:
    """Plain-text help, wrapped at words inside 80 columns: the command list, or one
    command, setting or topic.

    ``KeyError`` for an unknown topic (the parser refuses those already).
    """
    from .topics import wrap_help

    return wrap_help(_help_text(topic))


#: The command list's synopsis column; a longer synopsis puts its summary on the next line.
_SYNOPSIS_WIDTH = 26


def _help_text(topic: str | None) -> str:
    if topic is None:
        lines = ["Commands (help COMMAND for more). Topics: help legend, pt, swap, counters,",
                 "COUNTER (help thp_swpout_pmd), sizes, addresses, ranges, names, notation."]
        for group, specs in by_group().items():
            lines.append(f"\n{group.value}:")
            for s in specs:
                if len(s.synopsis) > _SYNOPSIS_WIDTH:
                    lines += [f"  {s.synopsis}", f"  {'':<{_SYNOPSIS_WIDTH}}  {s.summary}"]
                else:
                    lines.append(f"  {s.synopsis:<{_SYNOPSIS_WIDTH}}  {s.summary}")
        lines += ["", "At the prompt: quit (or Ctrl-D) leaves; help shell lists what else it takes."]
        return "\n".join(lines)
    from .topics import teaching_text

    text = teaching_text(topic)
    if text is not None:
        return text
    if topic in TOPICS:
        return TOPICS[topic]
    if topic in setting_names():
        spec = setting(topic)
        lines = [spec.usage, f"default: {spec.format_value(spec.default)}", "", spec.help]
        if spec.name == "fail":
            lines += [""] + [f"  {p:<13} {FAULT_POINT_HELP[p]}" for p in FAULT_POINTS]
        return "\n".join(lines)
    found = [s for s in COMMANDS if " ".join(s.words) == topic]
    found = found or [s for s in COMMANDS if s.words[0] == topic]
    if not found:
        raise KeyError(topic)
    out = []
    for s in found:
        out.append("\n".join([*s.usages(), "", s.summary, "", s.help]
                             + (["", "examples:"] + [f"  {e}" for e in s.examples] if s.examples else [])))
    return "\n\n".join(out)
