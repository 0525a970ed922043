"""Spread a benchmark over several GPUs of one host: one child process per GPU (CUDA_VISIBLE_DEVICES), each
pinned to its own share of the CPU cores, so one child's compiles and Python overhead do not disturb the
timings of another. Every ratio a child reports is measured on its own GPU, against baselines it timed
there itself, so the children's rows can be put in one table."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

Spawn = Callable[[list[str], dict[str, str], "Sequence[int] | None"], Any]  # -> object with .wait() -> int


def parse_gpus(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def round_robin(items: Sequence[str], n: int) -> list[list[str]]:
    """items[0], items[n], ... for the first child: neighbours in a numbered suite (similar sizes) part."""
    return [list(items[i::n]) for i in range(n)]


def without_option(argv: Sequence[str], *names: str) -> list[str]:
    """argv less `--name VALUE` and `--name=VALUE` for each name (flags that take one value)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(f"{name}=") for name in names):
            out.append(arg)
    return out


def cpu_shares(n: int, *, cpus: Sequence[int] | None = None,
               siblings: Callable[[int], Sequence[int]] | None = None) -> list[list[int] | None]:
    """This process's cores (or `cpus`) cut into n shares of whole physical cores (None each where affinity is not
    available). SMT siblings stay in one share: a lane timing a launch-bound network (a batch-2 ResNet18 is dozens
    of kernel launches a call) would otherwise share a physical core with another lane's builds, and its launches,
    and so its timings, would slow down with them. With fewer physical cores than shares, logical CPUs are cut
    instead. `siblings` (for tests): a CPU's SMT siblings, itself included; the kernel's topology by default."""
    if cpus is None:
        if not hasattr(os, "sched_getaffinity") or n <= 0:
            return [None] * max(n, 0)
        cpus = sorted(os.sched_getaffinity(0))
    if n <= 0 or len(cpus) < n:
        return [None] * max(n, 0)
    cores = physical_cores(cpus, siblings or smt_siblings)
    if len(cores) < n:
        cores = [[c] for c in sorted(cpus)]
    size = len(cores) // n
    return [sorted(c for core in cores[i * size:(i + 1) * size] for c in core) for i in range(n)]


def physical_cores(cpus: Sequence[int], siblings: Callable[[int], Sequence[int]]) -> list[list[int]]:
    """`cpus` grouped by physical core (each group the SMT siblings among `cpus`), in order of their lowest CPU."""
    mine, seen, out = set(cpus), set(), []
    for cpu in sorted(mine):
        if cpu in seen:
            continue
        group = sorted(({cpu} | set(siblings(cpu))) & mine)
        seen.update(group)
        out.append(group)
    return out


def smt_siblings(cpu: int) -> list[int]:
    """The CPUs sharing `cpu`'s physical core, from sysfs ("0,8" or "0-1"); just `cpu` where it cannot be read."""
    try:
        text = open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read().strip()
    except OSError:
        return [cpu]
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        if low.strip().isdigit():
            out.extend(range(int(low), int(high) + 1) if high.strip().isdigit() else [int(low)])
    return out or [cpu]


def _spawn(command: list[str], env: dict[str, str], cores: Sequence[int] | None) -> subprocess.Popen[bytes]:
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    return subprocess.Popen(command, env=env, preexec_fn=pin)


def run_on_gpus(module: str, argvs: Sequence[list[str]], gpus: Sequence[str], spawn: Spawn | None = None) -> list[int]:
    """`python -P -m module *argvs[i]` on gpus[i], all at once; their exit statuses, after all have ended.
    (-P: a source checkout's kernelwright/ folder in the working directory must not shadow the installed
    package.)"""
    spawn = spawn or _spawn
    shares = cpu_shares(len(gpus))
    children = [spawn([sys.executable, "-P", "-m", module, *argv], {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}, cores)
                for argv, gpu, cores in zip(argvs, gpus, shares)]
    return [child.wait() for child in children]
