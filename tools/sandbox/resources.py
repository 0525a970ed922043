"""Host memory of a process tree, read from /proc (Linux): what the harness bounds and benchmarks report.

RSS counts a shared library once in every process that maps it (torch's CUDA libraries are over a GB
and every worker maps them), so the sum of RSS over a tree overstates what it holds. PSS shares each
page among the processes that map it, so PSS sums to the tree's real footprint: limits use PSS, and
reports give both.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TreeMemory:
    rss_bytes: int
    pss_bytes: int
    processes: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (from every thread's children list; empty when /proc has none)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found += [int(c) for c in text.split()]
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, breadth first."""
    out: list[int] = []
    frontier = [pid]
    while frontier:
        nxt = []
        for p in frontier:
            kids = children_of(p)
            out += kids
            nxt += kids
        frontier = nxt
    return out


def process_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) when it is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return _rss_only(pid)
    rss = pss = 0
    for line in text.splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) * 1024
    return rss, pss


def _rss_only(pid: int) -> tuple[int, int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
                return rss, rss
    except OSError:
        pass
    return 0, 0


def tree_memory(root: int | None = None, *, include_root: bool = True) -> TreeMemory:
    """RSS and PSS summed over `root` (default: this process) and all its descendants."""
    root = os.getpid() if root is None else root
    pids = ([root] if include_root else []) + descendants(root)
    rss = pss = 0
    for pid in pids:
        r, p = process_memory(pid)
        rss += r
        pss += p
    return TreeMemory(rss, pss, len(pids))
