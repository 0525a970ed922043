"""The isolation every process that imports or runs candidate code starts in: the setting, the plan, the
command prefix, and the plain-words statement of what is in force (docs/SANDBOX.md says why and how).

The setting `[harness] isolation` lives here (ISOLATION_MODES): "auto" (the strongest available, the
default), "off", "required" (refuse to run without the full isolation: IsolationUnavailable).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.procenv import ToolJail

# jail.py owns both (it runs by path, stdlib only); REQUIRED_EXIT is re-exported for the pool
from kernelwright.tools.sandbox.jail import REQUIRED_EXIT as REQUIRED_EXIT
from kernelwright.tools.sandbox.jail import WORKER_CGROUP_PREFIX

IsolationMode = Literal["auto", "off", "required"]
ISOLATION_MODES: tuple[str, ...] = ("auto", "off", "required")
JAIL_SCRIPT = Path(__file__).with_name("jail.py")

# Limits on every jailed process. No RLIMIT_AS: CUDA reserves terabytes of virtual address space. CPU time is a
# backstop over a worker's whole life (it serves one run, and waiting on the GPU spins a core): hangs are the
# harness's watchdog's job, within seconds; this only ends a process that escaped it.
DEFAULT_LIMITS: dict[str, int] = {"nofile": 4096, "fsize": 8 << 30, "core": 0, "cpu": 6 * 3600}
DEFAULT_PIDS_MAX = 4096  # processes + threads of one worker (torch starts a thread per core, and more)
CAP_SYS_ADMIN = 21


def check_mode(mode: str) -> IsolationMode:
    if mode not in ISOLATION_MODES:
        raise KernelwrightError(f"harness.isolation must be one of {', '.join(ISOLATION_MODES)}, got {mode!r}",
                                where="harness.isolation")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class IsolationPolicy:
    """What a jailed process may see and write. Paths are absolute; `show` re-exposes (read-only) paths
    inside hidden ones (the Python install, the package, the problem), `writable` are its only writable
    places besides /dev (GPU device files, CUDA IPC shared memory) and /proc."""

    mode: IsolationMode = "auto"
    hide: tuple[str, ...] = ()
    show: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    scratch: tuple[str, ...] = ()  # folders replaced by a private writable tmpfs (/tmp for ncu's lock file)
    # capabilities left in the bounding set (numbers): none, except for ncu, which needs CAP_SYS_ADMIN (21)
    # for the GPU's performance counters; a process with it could undo its mounts (weaker, said in reports)
    keep_caps: tuple[int, ...] = ()
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    pids_max: int | None = DEFAULT_PIDS_MAX
    cgroup_name: str = ""  # the pids cgroup's folder name (default: kernelwright-worker-<pid>)

    def plan(self) -> dict[str, Any]:
        return {"net": True, "mount": True, "hide": _absolute(self.hide), "show": _absolute(self.show),
                "writable": _absolute(self.writable), "scratch": _absolute(self.scratch), "keep_caps": list(self.keep_caps), "limits": self.limits, "pids_max": self.pids_max, "cgroup_name": self.cgroup_name,
                "required": self.mode == "required"}

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` started inside the jail (unchanged when isolation is off)."""
        if self.mode == "off" or not sys.platform.startswith("linux"):
            return list(cmd)
        return [sys.executable, "-I", "-S", str(JAIL_SCRIPT), json.dumps(self.plan()), "--", *cmd]


def default_private_paths(project: Path | None = None) -> tuple[str, ...]:
    """Never readable by candidate code: the user's home and the project's `.env` (the front adds the runs
    folder and the archive, which it knows)."""
    root = project or Path.cwd()
    return tuple(str(p) for p in (Path.home(), root / ".env"))


def runtime_paths() -> tuple[str, ...]:
    """What a worker needs to read even where it lies inside a hidden folder: this Python and the import path."""
    found = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent)}
    found |= {p for p in sys.path if p and os.path.isabs(p)}
    found |= {p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)}
    return tuple(sorted(found))


def child_policy(base: IsolationPolicy, env: dict[str, str], work_dir: Path,
                 scratch: tuple[str, ...] = ()) -> IsolationPolicy:
    """`base` completed for one child: its home and temp folder become `work_dir` (private, removed with it),
    the shared build caches stay writable (and are named in `env`, so they do not move with HOME), the
    Python install and import path stay readable inside hidden folders. `env` is updated in place."""
    from kernelwright.tools.compile.nvcc import WORKER_ENV

    home = Path(os.path.expanduser("~"))
    # kernelwright's cache root holds the archive too: only its build/ is writable (tools.compile.nvcc)
    kw_cache = Path(env.get(WORKER_ENV["cache_dir"]) or home / ".cache" / "kernelwright")
    torch_ext = Path(env.get("TORCH_EXTENSIONS_DIR") or home / ".cache" / "torch_extensions")
    # torch.compile's and Triton's caches, where they would be without the jail: shared, or every worker
    # compiles the baselines (and Triton candidates) cold
    inductor = Path(env.get("TORCHINDUCTOR_CACHE_DIR") or Path(tempfile.gettempdir()) / f"torchinductor_{_user()}")
    triton = Path(env.get("TRITON_CACHE_DIR") or home / ".triton" / "cache")
    env.update({WORKER_ENV["cache_dir"]: str(kw_cache), "TORCH_EXTENSIONS_DIR": str(torch_ext),
                "TORCHINDUCTOR_CACHE_DIR": str(inductor), "TRITON_CACHE_DIR": str(triton)})
    caches = (kw_cache / "build", torch_ext, inductor, triton)
    for folder in caches:
        folder.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(work_dir), "TMPDIR": str(work_dir)})
    return IsolationPolicy(mode=base.mode, hide=(*default_private_paths(), *base.hide),
                           show=(*runtime_paths(), *base.show),
                           writable=(str(work_dir), *map(str, caches), *base.writable),
                           scratch=(*base.scratch, *scratch), keep_caps=base.keep_caps, limits=base.limits,
                           pids_max=base.pids_max, cgroup_name=base.cgroup_name)


@contextmanager
def jailed(cmd: list[str], policy: IsolationPolicy | None, env: dict[str, str]) -> Iterator[list[str]]:
    """A one-shot tool command that runs candidate code (ncu, compute-sanitizer) started in the jail, with a
    private /tmp (ncu keeps its lock file there) and work folder, both removed afterwards, as is its pids
    cgroup. `env` is updated in place."""
    if policy is None or policy.mode == "off" or not sys.platform.startswith("linux"):
        yield list(cmd)
        return
    work_dir = Path(tempfile.mkdtemp(prefix="kw-tool-work-"))
    tool = shutil.which(cmd[0]) or cmd[0]
    name = f"kernelwright-tool-{work_dir.name}"
    policy = replace(policy, show=(*policy.show, str(Path(tool).resolve().parent)), cgroup_name=name)  # the tool too
    try:
        yield child_policy(policy, env, work_dir, scratch=("/tmp",)).wrap(cmd)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
            release({"cgroup_pids": f"{base}/{name}"})


def tool_jail(policy: IsolationPolicy | None, *, keep_caps: tuple[int, ...] = ()) -> ToolJail | None:
    """`jailed` with `policy` bound, for a tool runner below the sandbox (tools.measure.ncu takes one)."""
    if policy is None:
        return None
    bound = replace(policy, keep_caps=(*policy.keep_caps, *keep_caps))
    return lambda cmd, env: jailed(cmd, bound, env)


def release_pid(pid: int) -> None:
    """Remove the pids cgroup the jail made for process `pid` (a worker that has exited)."""
    for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        release({"cgroup_pids": f"{base}/{WORKER_CGROUP_PREFIX}{pid}"})


def _user() -> str:
    try:
        import getpass

        return getpass.getuser().replace("\\", "_")  # as torch._inductor names its cache folder
    except (KeyError, OSError):
        return "unknown"


def _absolute(paths: tuple[str, ...]) -> list[str]:
    return sorted({os.path.realpath(p) for p in paths})  # mount points are real paths


def probe(policy: IsolationPolicy | None = None) -> dict[str, Any]:
    """What the jail achieves on this machine (tried for real in a throw-away child)."""
    policy = policy or IsolationPolicy()
    if not sys.platform.startswith("linux"):
        return {"namespaces": [], "filesystem": False, "limits": [], "cgroup_pids": "",
                "unavailable": {"namespaces": f"not Linux ({sys.platform})"}}
    try:
        out = subprocess.run([sys.executable, "-I", str(JAIL_SCRIPT), "--probe", json.dumps(policy.plan())],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return json.loads(out)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
        return {"namespaces": [], "filesystem": False, "limits": [], "cgroup_pids": "",
                "unavailable": {"jail": f"probe failed: {exc}"}}


def describe(state: dict[str, Any] | None, mode: str = "auto") -> str:
    """One line for `kernelwright env` and the reports, e.g. 'namespaces: net+mount; file system: read-only,
    private paths hidden; limits: nofile, fsize, core, cpu; cgroup pids: unavailable (...)'."""
    if mode == "off":
        return "off (harness.isolation = \"off\"): candidate code runs with the harness's own rights"
    if not state:
        return "unknown (the worker did not report it)"
    gone = state.get("unavailable") or {}
    spaces = "+".join(state.get("namespaces") or []) or f"none ({gone.get('namespaces', 'not set up')})"
    parts = [f"namespaces: {spaces}"]
    if "net" not in (state.get("namespaces") or []):
        parts.append("network: socket guard only (weaker: an audit hook; native code can bypass it)")
    parts.append("file system: read-only, private paths hidden" if state.get("filesystem")
                 else f"file system: not isolated ({gone.get('filesystem', 'unavailable')})")
    parts.append("limits: " + (", ".join(state.get("limits") or []) or "none"))
    cg = state.get("cgroup_pids") or ""
    if cg and not cg.startswith("unavailable"):
        parts.append("cgroup pids: on")
    else:
        parts.append(f"cgroup pids: unavailable ({gone.get('cgroup_pids') or cg.removeprefix('unavailable: ') or 'off'})")
    caps = state.get("capabilities")
    parts.append("capabilities: none" if caps == "none" else
                 f"capabilities: {caps} (weaker: may undo its mounts)" if caps else
                 f"capabilities: not dropped ({gone.get('capabilities', 'unknown')})")
    parts.append("gpu memory: not enforced per worker")
    return "; ".join(parts)


def missing(state: dict[str, Any]) -> dict[str, str]:
    """The mechanisms `required` insists on that did not take effect."""
    gone = dict(state.get("unavailable") or {})
    cg = state.get("cgroup_pids") or ""
    if cg.startswith("unavailable"):
        gone.setdefault("cgroup_pids", cg)
    return gone


def release(state: dict[str, Any] | None) -> None:
    """Remove a finished worker's pids cgroup (the kernel keeps an empty one until it is removed), first
    killing what is left in it: a process the candidate started in a session of its own escapes the
    worker's process group, not its cgroup."""
    path = (state or {}).get("cgroup_pids") or ""
    if not path.startswith("/sys/fs/cgroup/") or not os.path.isdir(path):
        return
    for _ in range(20):
        try:
            os.rmdir(path)
            return
        except OSError:
            pass
        try:
            with open(f"{path}/cgroup.procs") as f:
                left = [int(p) for p in f.read().split()]
        except OSError:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def jail_state() -> dict[str, Any] | None:
    """In a worker: what its jail set up (None when it started without one)."""
    text = os.environ.get("KERNELWRIGHT_ISOLATION")
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def install_socket_guard() -> None:
    """The fallback where no network namespace can be made: refuse every new socket and every connect/bind
    from Python (an audit hook cannot be removed). Weaker than a namespace: native code can bypass it."""
    blocked = {"socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in blocked:
            raise PermissionError(f"network access is blocked in the kernelwright sandbox ({event})")

    sys.addaudithook(hook)
