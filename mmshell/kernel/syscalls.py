"""The system calls the live runner makes, through ctypes (x86-64 numbers and layouts).

Every wrapper raises :class:`SysError` (an ``OSError`` with the errno name in
its message) when the call fails, so the runner can report it in the
kernel's terms.  Memory accesses are done here too: :func:`store` is a plain
``memmove`` (one write fault per page, never a read first: see
kernel-semantics §0.4) and :func:`load` a ``memmove`` out of the page (a
volatile load the compiler cannot drop).

The uapi constants for UFFDIO_MOVE and PAGEMAP_SCAN are spelled out because
the C headers of this machine (6.1) predate them; values from
include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h of 6.18.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from ..mm.mman import Madv

_libc = ctypes.CDLL(None, use_errno=True)

# -- mmap / madvise -------------------------------------------------------------------------------

PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_NORESERVE = 0x4000
MAP_FIXED_NOREPLACE = 0x100000
MAP_FAILED = ctypes.c_void_p(-1).value

# The MADV_* values of the language's advice are mm/mman.py's Madv (the kernel's numbers);
# the runner's own uses take them from there too.
MADV_COLD = int(Madv.MADV_COLD)
MADV_HUGEPAGE = int(Madv.MADV_HUGEPAGE)
MADV_POPULATE_WRITE = 23          # the runner's own (cgroup.py): no .mmsh advice



def prot_of(vm_flags: int) -> int:
    """The PROT_* bits of mmap/mprotect that give these VM_READ/VM_WRITE flags (the inverse of
    the kernel's calc_vm_prot_bits; the language names protections by their vm_flags)."""
    return (PROT_READ if vm_flags & 1 else 0) | (PROT_WRITE if vm_flags & 2 else 0)


MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2

# -- syscall numbers (x86-64) -----------------------------------------------------------------------

SYS_userfaultfd, SYS_pidfd_open = 323, 434

# -- userfaultfd (include/uapi/linux/userfaultfd.h) --------------------------------------------------

UFFD_API = 0xAA
UFFD_FEATURE_SIGBUS, UFFD_FEATURE_MOVE = 1 << 7, 1 << 16
UFFDIO_REGISTER_MODE_MISSING = 1
O_CLOEXEC, O_NONBLOCK = 0o2000000, 0o4000

_IOC_WRITE, _IOC_READ = 1, 2


def _iowr(kind: int, nr: int, size: int) -> int:
    return ((_IOC_READ | _IOC_WRITE) << 30) | (size << 16) | (kind << 8) | nr


class UffdioApi(ctypes.Structure):
    _fields_ = [("api", ctypes.c_uint64), ("features", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


class UffdioRegister(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("len", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("ioctls", ctypes.c_uint64)]


class UffdioMove(ctypes.Structure):
    _fields_ = [("dst", ctypes.c_uint64), ("src", ctypes.c_uint64), ("len", ctypes.c_uint64),
                ("mode", ctypes.c_uint64), ("move", ctypes.c_int64)]


UFFDIO_API = _iowr(0xAA, 0x3F, ctypes.sizeof(UffdioApi))
UFFDIO_REGISTER = _iowr(0xAA, 0x00, ctypes.sizeof(UffdioRegister))
UFFDIO_MOVE = _iowr(0xAA, 0x05, ctypes.sizeof(UffdioMove))

# -- PAGEMAP_SCAN (include/uapi/linux/fs.h, 6.7+) ------------------------------------------------------

PAGE_IS_WPALLOWED = 1 << 0
PAGE_IS_WRITTEN = 1 << 1
PAGE_IS_FILE = 1 << 2
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_PFNZERO = 1 << 5
PAGE_IS_HUGE = 1 << 6
PAGE_IS_SOFT_DIRTY = 1 << 7
PAGE_IS_ALL = (1 << 8) - 1


class PageRegion(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("categories", ctypes.c_uint64)]


class PmScanArg(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint64), ("flags", ctypes.c_uint64), ("start", ctypes.c_uint64),
                ("end", ctypes.c_uint64), ("walk_end", ctypes.c_uint64), ("vec", ctypes.c_uint64),
                ("vec_len", ctypes.c_uint64), ("max_pages", ctypes.c_uint64),
                ("category_inverted", ctypes.c_uint64), ("category_mask", ctypes.c_uint64),
                ("category_anyof_mask", ctypes.c_uint64), ("return_mask", ctypes.c_uint64)]


PAGEMAP_SCAN = _iowr(ord("f"), 16, ctypes.sizeof(PmScanArg))

# -- swapon / prctl ------------------------------------------------------------------------------------

SWAP_FLAG_PREFER = 0x8000
SWAP_FLAG_PRIO_MASK = 0x7FFF
PR_SET_THP_DISABLE = 41
PR_SET_PDEATHSIG = 1

# -- prototypes --------------------------------------------------------------------------------------------

_c = ctypes
_libc.mmap.restype = _c.c_void_p
_libc.mmap.argtypes = [_c.c_void_p, _c.c_size_t, _c.c_int, _c.c_int, _c.c_int, _c.c_long]
_libc.munmap.argtypes = [_c.c_void_p, _c.c_size_t]
_libc.mprotect.argtypes = [_c.c_void_p, _c.c_size_t, _c.c_int]
_libc.madvise.argtypes = [_c.c_void_p, _c.c_size_t, _c.c_int]
_libc.mremap.restype = _c.c_void_p
_libc.mremap.argtypes = [_c.c_void_p, _c.c_size_t, _c.c_size_t, _c.c_int, _c.c_void_p]
_libc.mincore.argtypes = [_c.c_void_p, _c.c_size_t, _c.c_char_p]
_libc.syscall.restype = _c.c_long
_libc.ioctl.argtypes = [_c.c_int, _c.c_ulong, _c.c_void_p]
_libc.swapon.argtypes = [_c.c_char_p, _c.c_int]
_libc.swapoff.argtypes = [_c.c_char_p]
_libc.prctl.argtypes = [_c.c_int, _c.c_ulong, _c.c_ulong, _c.c_ulong, _c.c_ulong]


class SysError(OSError):
    """A failed system call: ``errno``, the errno name and what was called."""

    errno: int      # always set (OSError's is int | None): __init__ passes err
    moved: int | None = None    # bytes a call got done before it failed (UFFDIO_MOVE)

    def __init__(self, err: int, call: str) -> None:
        super().__init__(err, f"{call}: {os.strerror(err)}")
        self.call = call

    def __str__(self) -> str:
        return f"{self.name}: {self.strerror}"

    @property
    def name(self) -> str:
        return errno_name(self.errno)


def errno_name(err: int) -> str:
    return _errno.errorcode.get(err, f"errno {err}")


def _check(ret: int, call: str) -> int:
    if ret == -1:
        raise SysError(ctypes.get_errno(), call)
    return ret


# -- memory ------------------------------------------------------------------------------------------------

def mmap(addr: int, length: int, prot: int, flags: int) -> int:
    """Anonymous mmap; returns the address."""
    ret = _libc.mmap(addr or None, length, prot, flags | MAP_ANONYMOUS, -1, 0)
    if ret is None or ret == MAP_FAILED:
        raise SysError(ctypes.get_errno(), f"mmap({addr:#x}, {length:#x})")
    return ret


def munmap(addr: int, length: int) -> None:
    _check(_libc.munmap(addr, length), f"munmap({addr:#x}, {length:#x})")


def mprotect(addr: int, length: int, prot: int) -> None:
    _check(_libc.mprotect(addr, length, prot), f"mprotect({addr:#x}, {length:#x}, {prot})")


def madvise(addr: int, length: int, advice: int) -> None:
    _check(_libc.madvise(addr, length, advice), f"madvise({addr:#x}, {length:#x}, {advice})")


def mremap(old: int, old_len: int, new_len: int, flags: int, new_addr: int = 0) -> int:
    ret = _libc.mremap(old, old_len, new_len, flags, new_addr or None)
    if ret is None or ret == MAP_FAILED:
        raise SysError(ctypes.get_errno(), f"mremap({old:#x}, {old_len:#x}, {new_len:#x})")
    return ret


def mincore(addr: int, length: int) -> bytes:
    """One byte per page of [addr, addr+length): bit 0 set when resident (or in the swap cache)."""
    n = (length + 4095) // 4096
    buf = ctypes.create_string_buffer(n)
    _check(_libc.mincore(addr, length, buf), f"mincore({addr:#x}, {length:#x})")
    return buf.raw[:n]


def store(addr: int, data: bytes) -> None:
    """A plain store of data at addr (one write access; no load first)."""
    ctypes.memmove(addr, data, len(data))


def load(addr: int, n: int) -> bytes:
    """Load n bytes at addr."""
    return ctypes.string_at(addr, n)


# -- userfaultfd ---------------------------------------------------------------------------------------------

def userfaultfd(features: int) -> int:
    """A new userfaultfd with UFFDIO_API done for `features`; returns the fd."""
    fd = _check(_libc.syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), "userfaultfd")
    api = UffdioApi(UFFD_API, features, 0)
    try:
        _check(_libc.ioctl(fd, UFFDIO_API, ctypes.byref(api)), "ioctl(UFFDIO_API)")
    except SysError:
        os.close(fd)
        raise
    return fd


def uffdio_register(fd: int, start: int, length: int, mode: int = UFFDIO_REGISTER_MODE_MISSING) -> int:
    reg = UffdioRegister(start, length, mode, 0)
    _check(_libc.ioctl(fd, UFFDIO_REGISTER, ctypes.byref(reg)), f"ioctl(UFFDIO_REGISTER, {start:#x})")
    return reg.ioctls


def uffdio_move(fd: int, dst: int, src: int, length: int, mode: int = 0) -> int:
    """UFFDIO_MOVE; returns the bytes moved.  On failure the SysError carries `moved`."""
    mv = UffdioMove(dst, src, length, mode, 0)
    ret = _libc.ioctl(fd, UFFDIO_MOVE, ctypes.byref(mv))
    if ret == -1:
        err = SysError(ctypes.get_errno(), f"ioctl(UFFDIO_MOVE, {src:#x} -> {dst:#x})")
        err.moved = mv.move
        raise err
    return mv.move


# -- /proc/PID/pagemap PAGEMAP_SCAN ----------------------------------------------------------------------

def pagemap_scan(fd: int, start: int, end: int, max_regions: int = 4096,
                 anyof: int = PAGE_IS_ALL) -> list[tuple[int, int, int]]:
    """(start, end, categories) runs of [start, end) from PAGEMAP_SCAN on an open pagemap fd.

    Pages with one of the `anyof` categories are reported (all of them by default:
    every page the walk visits); pages it does not visit (no VMA, or a PMD with no
    page table) are absent.  Each run reports every category it has.
    """
    out: list[tuple[int, int, int]] = []
    vec = (PageRegion * max_regions)()
    while start < end:
        arg = PmScanArg(ctypes.sizeof(PmScanArg), 0, start, end, 0, ctypes.addressof(vec), max_regions,
                        0, 0, 0, anyof, PAGE_IS_ALL)
        n = _check(_libc.ioctl(fd, PAGEMAP_SCAN, ctypes.byref(arg)), f"ioctl(PAGEMAP_SCAN, {start:#x})")
        out.extend((vec[i].start, vec[i].end, vec[i].categories) for i in range(n))
        if arg.walk_end <= start or arg.walk_end >= end:
            break
        start = arg.walk_end
    return out


# -- swap, prctl, pidfd ------------------------------------------------------------------------------

def swapon(path: str, prio: int | None) -> None:
    flags = 0 if prio is None else SWAP_FLAG_PREFER | (prio & SWAP_FLAG_PRIO_MASK)
    _check(_libc.swapon(os.fsencode(path), flags), f"swapon({path})")


def swapoff(path: str) -> None:
    _check(_libc.swapoff(os.fsencode(path)), f"swapoff({path})")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, 0, 0), f"prctl({option})")


def pidfd_open(pid: int) -> int:
    return _check(_libc.syscall(SYS_pidfd_open, pid, 0), f"pidfd_open({pid})")


