"""Start a command inside an isolation layer: own network and mount namespaces, a read-only file system with
private paths hidden, resource limits. Linux only; standard library only.

Run by path, before anything imports candidate code:
    python -I jail.py '<plan as JSON>' -- python -m kernelwright.tools.sandbox.worker ...
It sets up what it can, records what took effect in the environment variable KERNELWRIGHT_ISOLATION
(JSON, read back by the worker's hello) and execs the command. With `"required": true` any missing
mechanism stops it with exit code 97 and the reason on stderr. `--probe` prints what would work, as JSON,
from a throw-away child (the namespaces are tried for real). See docs/SANDBOX.md for the why.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import socket
import struct
import sys

REQUIRED_EXIT = 97
WORKER_CGROUP_PREFIX = "kernelwright-worker-"  # + the worker's pid: the pids cgroup the jail makes for it
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
# mounts left as they are: kernel views and devices (the GPU's /dev/nvidia* and CUDA IPC's /dev/shm live there)
KEEP_WRITABLE_PREFIXES = ("/proc", "/dev")
# kernel knobs a uid-0 process may write by file mode alone, capabilities or not: bound read-only
READ_ONLY_KERNEL_PATHS = ("/proc/sys", "/proc/sysrq-trigger")
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, CAP_LAST = 24, 38, 63
_libc = ctypes.CDLL(None, use_errno=True)


class JailError(Exception):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise JailError(f"{what}: {os.strerror(err)} (errno {err})")


def _enc(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = _enc
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source or fstype} on {target}")


def _unshare(flags: int, what: str) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({what})")


def _enter_namespaces(want_net: bool, want_mount: bool) -> list[str]:
    flags = (CLONE_NEWNET if want_net else 0) | (CLONE_NEWNS if want_mount else 0)
    if not flags:
        return []
    uid, gid = os.geteuid(), os.getegid()
    user_ns = uid != 0  # an unprivileged user gets the namespaces through a user namespace of its own
    _unshare(flags | (CLONE_NEWUSER if user_ns else 0), "+".join(
        n for n, on in (("user", user_ns), ("net", want_net), ("mount", want_mount)) if on))
    if user_ns:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    return [n for n, on in (("net", want_net), ("mount", want_mount)) if on]


def _loopback_up() -> None:
    """The new network namespace has only `lo`, and it is down: bring it up (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), 0x8913, ifreq))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14s", b"lo", flags | 0x1, b""))  # SIOCSIFFLAGS, IFF_UP


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            points.append(point)
    return points


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _layer_paths(hide: list[str], show: list[str], writable: list[str], scratch: list[str]) -> None:
    """Hide and re-show paths, shallow first (a path shown inside a hidden folder is bound back from the
    original, opened before anything was hidden; one hidden inside a shown folder is hidden again);
    bind the writable ones onto themselves; then make every other mount read-only."""
    rules = [(p, "hide") for p in hide if os.path.lexists(p)]
    rules += [(p, "show") for p in show if os.path.exists(p) and p not in hide]
    rules += [(p, "write") for p in writable if os.path.isdir(p)]
    rules += [(p, "scratch") for p in scratch if os.path.isdir(p)]  # a private, writable, empty tmpfs
    rules.sort(key=lambda r: (r[0].rstrip("/").count("/"), r[1] not in ("hide", "scratch")))
    originals = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p, kind in rules if kind in ("show", "write")}
    empty = os.open("/dev/null", os.O_PATH | os.O_CLOEXEC)
    for path, kind in rules:
        if kind == "hide" and not os.path.lexists(path):
            continue  # inside a folder hidden (or replaced) already: nothing of it is visible
        if kind == "hide":
            if os.path.isdir(path) and not os.path.islink(path):
                _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
            else:
                _mount(f"/proc/self/fd/{empty}", path, None, MS_BIND)
            continue
        if kind == "scratch":
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1g,mode=1777")
            continue
        if not os.path.lexists(path):  # inside a hidden folder: make the mount point in its tmpfs
            if os.path.isdir(f"/proc/self/fd/{originals[path]}"):
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
        _mount(f"/proc/self/fd/{originals[path]}", path, None, MS_BIND | MS_REC)
    writable_roots = [p for p, kind in rules if kind in ("write", "scratch")]
    for point in sorted(set(_mount_points()), key=len):
        # a writable folder's own mount stays writable; anything mounted inside one (a folder shown again) does not
        if point in writable_roots or any(_under(point, k) for k in KEEP_WRITABLE_PREFIXES):
            continue
        if not os.path.exists(point):
            continue
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        except JailError:
            # a mount locked by a user namespace keeps its nodev/noexec flags: retry with them
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for fd in (*originals.values(), empty):
        os.close(fd)
    for path in READ_ONLY_KERNEL_PATHS:
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND)
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _mount_view(plan: dict) -> None:
    cwd = os.getcwd()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here leaks back to the host
    _layer_paths(list(plan.get("hide", [])), list(plan.get("show", [])), list(plan.get("writable", [])),
                 list(plan.get("scratch", [])))
    # the old working directory still reaches the original folder under a hidden one: walk to it afresh
    try:
        os.chdir(cwd)
    except OSError:
        os.chdir(os.environ.get("HOME") or "/")


_RLIMITS = {"nofile": resource.RLIMIT_NOFILE, "fsize": resource.RLIMIT_FSIZE, "core": resource.RLIMIT_CORE,
            "cpu": resource.RLIMIT_CPU, "nproc": resource.RLIMIT_NPROC}


def _set_limits(limits: dict[str, int]) -> list[str]:
    done = []
    for name, value in limits.items():
        if name == "nproc" and os.geteuid() == 0:
            continue  # RLIMIT_NPROC is per user and the kernel ignores it for root
        kind = _RLIMITS[name]
        soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))
        done.append(name)
    return done


def _drop_privileges(keep: set[int]) -> None:
    """Empty the capability bounding set (but `keep`) and forbid gaining privileges: root in the jail then
    execs with no capabilities, so it cannot unmount what hides the private paths or leave its cgroup."""
    for cap in range(CAP_LAST + 1):
        if cap not in keep and _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            raise JailError(f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(ctypes.get_errno())}")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def _cgroup_pids(pids_max: int, name: str = "") -> str:
    """Put this process in a new pids cgroup (v2 at the root, or the v1 pids hierarchy); its path or ''."""
    root = "/sys/fs/cgroup"
    if os.path.exists(f"{root}/cgroup.controllers"):
        with open("/proc/self/cgroup") as f:
            if f.read().strip() != "0::/":
                raise JailError("cgroup v2: this process is not in the root cgroup (a child cannot be made here)")
        base = root
    elif os.path.isdir(f"{root}/pids"):
        base = f"{root}/pids"
    else:
        raise JailError("no pids cgroup controller mounted")
    _remove_stale_cgroups(base)
    path = f"{base}/{name or f'{WORKER_CGROUP_PREFIX}{os.getpid()}'}"
    try:
        os.mkdir(path)
        with open(f"{path}/pids.max", "w") as f:
            f.write(str(pids_max))
        with open(f"{path}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    except OSError as exc:
        if os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                pass
        raise JailError(f"pids cgroup: {exc.strerror} ({exc.filename or base})") from None
    return path


def _remove_stale_cgroups(base: str) -> None:
    """Remove the empty cgroups of workers that have exited without their harness removing them (a process that
    ended without closing its evaluator). Only a dead pid's: the kernel refuses to remove one with processes in it."""
    prefix = WORKER_CGROUP_PREFIX
    try:
        names = [n for n in os.listdir(base) if n.startswith(prefix) and n[len(prefix):].isdigit()]
    except OSError:
        return
    for name in names:
        try:
            os.kill(int(name[len(prefix):]), 0)
            continue  # alive (its worker, or a process that took its pid): left alone
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            os.rmdir(f"{base}/{name}")
        except OSError:
            pass


def apply(plan: dict) -> dict:
    """Set up what `plan` asks in this process; what took effect and what did not (with why)."""
    state: dict = {"namespaces": [], "filesystem": False, "limits": [], "cgroup_pids": "", "capabilities": "",
                   "unavailable": {}}
    gone = state["unavailable"]
    try:
        state["namespaces"] = _enter_namespaces(bool(plan.get("net", True)), bool(plan.get("mount", True)))
    except (JailError, OSError) as exc:
        gone["namespaces"] = str(exc)
    if "net" in state["namespaces"]:
        try:
            _loopback_up()
        except OSError as exc:
            gone["loopback"] = str(exc)  # loopback down: still no network, only stricter
    if plan.get("pids_max"):  # before the file system turns read-only (/sys/fs/cgroup with it)
        try:
            state["cgroup_pids"] = _cgroup_pids(int(plan["pids_max"]), str(plan.get("cgroup_name") or ""))
        except (JailError, OSError) as exc:
            gone["cgroup_pids"] = str(exc)
    if "mount" in state["namespaces"]:
        try:
            _mount_view(plan)
            state["filesystem"] = True
        except (JailError, OSError) as exc:
            gone["filesystem"] = str(exc)
    elif plan.get("mount", True):
        gone.setdefault("filesystem", "no mount namespace")
    try:
        state["limits"] = _set_limits({k: int(v) for k, v in plan.get("limits", {}).items()})
    except (ValueError, OSError) as exc:
        gone["limits"] = str(exc)
    keep = {int(c) for c in plan.get("keep_caps", [])}
    try:
        _drop_privileges(keep)
        state["capabilities"] = "none" if not keep else "kept " + ",".join(map(str, sorted(keep)))
    except (JailError, OSError) as exc:
        gone["capabilities"] = str(exc)
    return state


def _probe(plan: dict) -> dict:
    """What `apply(plan)` would achieve, tried in a child that exits at once (the host is untouched)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            cgroup = _probe_cgroup()  # while /sys is still writable
            state = apply({**plan, "pids_max": 0})
            state["cgroup_pids"] = cgroup
            os.write(write, json.dumps(state).encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b"{}")


def _probe_cgroup() -> str:
    try:
        path = _cgroup_pids(1 << 20)
    except (JailError, OSError) as exc:
        return f"unavailable: {exc}"
    try:
        with open(f"{os.path.dirname(path)}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        os.rmdir(path)
    except OSError:
        pass
    return "available"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--probe"]:
        print(json.dumps(_probe(json.loads(argv[1]))))
        return 0
    if len(argv) < 3 or argv[1] != "--":
        print("usage: jail.py PLAN_JSON -- COMMAND...", file=sys.stderr)
        return 2
    plan = json.loads(argv[0])
    state = apply(plan)
    if plan.get("required") and state["unavailable"]:
        print(f"kernelwright isolation required but unavailable: {json.dumps(state['unavailable'])}", file=sys.stderr)
        return REQUIRED_EXIT
    os.environ["KERNELWRIGHT_ISOLATION"] = json.dumps(state)
    if "net" not in state["namespaces"]:
        os.environ["KERNELWRIGHT_SOCKET_GUARD"] = "1"  # the weaker fallback: the worker refuses new sockets
    try:
        os.execvp(argv[2], argv[2:])
    except OSError as exc:
        print(f"jail: cannot run {argv[2]}: {exc}", file=sys.stderr)
        return 127 if exc.errno == errno.ENOENT else 126
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
