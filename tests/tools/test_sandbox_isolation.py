"""The sandbox's isolation (tools.sandbox.isolation, jail.py) holds against hostile candidate code.

Each hostile candidate does its deed in module-level code, then raises what it saw, so the report's message
shows whether the deed worked. CPU self-test mode: no GPU needed. These skip only where the platform has no
namespaces (not Linux, or neither root nor user namespaces); CI runs as root on Linux, so there they run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernelwright.tools.errors import IsolationUnavailable
from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox import isolation
from kernelwright.tools.sandbox.isolation import IsolationPolicy, describe, probe
from kernelwright.tools.sandbox.pool import SandboxWorker, WorkerOptions
from support.paths import FIXTURES

PROBLEM = FIXTURES / "problems" / "relu_affine_batched.py"
FAST = EvalSettings(compile_baseline=False, keep_standby=False, load_timeout_s=30.0, call_timeout_s=20.0, isolation="auto",
                    code_check=False,  # the jail must hold where the static pre-check is bypassed
                    bench=BenchSettings(rep_ms=20.0, min_trials=10))
SECRET = "planted-secret-7f3a"


def _namespaces_missing() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"no Linux namespaces on {sys.platform}"
    state = probe()
    if {"net", "mount"} - set(state.get("namespaces") or []):
        return f"this machine allows no network/mount namespaces: {state.get('unavailable')}"
    return None


_MISSING = _namespaces_missing()
needs_namespaces = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


@pytest.fixture()
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A fake home with a secret, a project folder (the harness's working directory) with a `.env`."""
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(SECRET)
    project.mkdir()
    (project / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    return {"home_secret": home / ".ssh" / "id_ed25519", "env": project / ".env", "home": home,
            "outside": tmp_path / "written_outside.txt", "candidates": tmp_path / "candidates"}


def _candidate(folder: Path, name: str, deed: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(deed) + textwrap.dedent("""
        import torch
        import torch.nn as nn


        class ModelNew(nn.Module):
            def forward(self, x):
                return torch.clamp_min(x, 0) * 2.0 + 1.0
        """))
    return path


def _evaluate(candidate: Path, settings: EvalSettings = FAST, isolation_mode: str = "auto"):
    options = WorkerOptions(device="cpu", isolation=IsolationPolicy(mode=isolation_mode))  # type: ignore[arg-type]
    with Evaluator(PROBLEM, settings, options) as ev:
        return ev.evaluate(candidate)


@needs_namespaces
def test_candidate_cannot_read_the_home_or_the_projects_env(planted: dict[str, Path]) -> None:
    cand = _candidate(planted["candidates"], "reader", f"""
        seen = []
        for p in ({str(planted["home_secret"])!r}, {str(planted["env"])!r}):
            try:
                seen.append(open(p).read())
            except OSError as exc:
                seen.append(type(exc).__name__)
        raise RuntimeError(f"read: {{seen}}")
        """)
    report = _evaluate(cand)
    assert report.reason == "load_error" and "read: [" in report.message, report.message
    assert SECRET not in report.message
    assert "FileNotFoundError" in report.message  # the home is an empty folder in the jail
    assert "namespaces: net+mount" in report.resources["isolation"]
    # the same candidate without the sandbox reads both: the test's deed is real
    assert SECRET in _evaluate(cand, isolation_mode="off").message


@needs_namespaces
def test_candidate_cannot_connect_to_a_server_on_loopback(planted: dict[str, Path]) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(0.2)
        port = server.getsockname()[1]
        cand = _candidate(planted["candidates"], "caller", f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"stolen")
                outcome = "connected"
            except OSError as exc:
                outcome = type(exc).__name__
            raise RuntimeError(f"network: {{outcome}}")
            """)
        report = _evaluate(cand)
        assert "network: ConnectionRefusedError" in report.message, report.message
        with pytest.raises(TimeoutError):
            server.accept()  # nothing reached the server


@needs_namespaces
def test_candidate_cannot_write_outside_its_work_dir(planted: dict[str, Path]) -> None:
    target = planted["outside"]
    cand = _candidate(planted["candidates"], "writer", f"""
        import os, tempfile
        results = []
        for p in ({str(target)!r}, {str(planted["home"] / "dropped.txt")!r}, {str(planted["candidates"] / "x.py")!r}):
            try:
                with open(p, "w") as f:
                    f.write("owned")
                results.append("wrote")
            except OSError as exc:
                results.append(type(exc).__name__ + ":" + str(exc.errno))
        with tempfile.NamedTemporaryFile() as own:  # its private work dir stays writable
            own.write(b"fine")
        raise RuntimeError(f"writes: {{results}}")
        """)
    report = _evaluate(cand)
    assert "writes: [" in report.message and "wrote" not in report.message, report.message
    assert not target.exists() and not (planted["home"] / "dropped.txt").exists()
    assert not (planted["candidates"] / "x.py").exists()


@needs_namespaces
def test_host_memory_past_the_limit_stops_the_worker(planted: dict[str, Path]) -> None:
    settings = EvalSettings(**{**FAST.__dict__, "host_memory_limit_gb": 1.5})
    report = _evaluate(FIXTURES / "cpu_cheats" / "host_memory_hog.py", settings)
    assert report.status == "rejected" and report.reason == "host_memory_limit", (report.reason, report.message)
    assert "namespaces: net+mount" in report.resources["isolation"]


@needs_namespaces
def test_an_honest_candidate_passes_inside_the_sandbox(planted: dict[str, Path]) -> None:
    report = _evaluate(FIXTURES / "cpu_cheats" / "honest.py")
    assert report.status == "passed", (report.reason, report.message)
    assert report.resources["isolation"].startswith("namespaces: net+mount; file system: read-only")


@needs_namespaces
def test_worker_inherits_no_file_descriptor_but_its_socket() -> None:
    worker = SandboxWorker("candidate", WorkerOptions(device="cpu"))
    try:
        worker.start()
        assert worker.proc is not None
        fds = sorted(int(f) for f in __import__("os").listdir(f"/proc/{worker.proc.pid}/fd"))
        info = worker.info["isolation"]
        cpu_limit = next(line for line in Path(f"/proc/{worker.proc.pid}/limits").read_text().splitlines()
                         if line.startswith("Max cpu time"))
    finally:
        worker.close()
    assert set(info["namespaces"]) == {"net", "mount"} and info["filesystem"]
    assert {"nofile", "fsize", "cpu"} <= set(info["limits"])
    assert cpu_limit.split()[3:5] == ["21600", "21600"], cpu_limit  # the CPU-time backstop, soft and hard
    # stdin, stdout/stderr (the log), the protocol socket; the rest are the worker's own (torch, epoll...)
    assert 0 in fds and 1 in fds and 2 in fds


@pytest.mark.parametrize("exits_before_hello", [False, True])
def test_required_isolation_that_cannot_be_met_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 exits_before_hello: bool) -> None:
    """A jail that reports a missing mechanism (as on a machine without namespaces) stops the evaluation with
    IsolationUnavailable naming it, instead of running the candidate unconfined; also when the jail has already
    exited as the harness says hello (a busy machine: that once surfaced as a bare BrokenPipeError)."""
    if exits_before_hello:
        from kernelwright.tools.sandbox import pool

        send = pool.send_message

        def late_hello(sock: socket.socket, header: dict, blobs: list | None = None) -> None:
            if header.get("op") == "hello":
                time.sleep(1.5)
            send(sock, header, blobs)

        monkeypatch.setattr(pool, "send_message", late_hello)
    fake = tmp_path / "jail.py"
    fake.write_text("import sys\nsys.stderr.write('kernelwright isolation required but unavailable: "
                    "{\"namespaces\": \"unshare(net+mount): Operation not permitted\"}\\n')\nsys.exit(97)\n")
    monkeypatch.setattr(isolation, "JAIL_SCRIPT", fake)
    with pytest.raises(IsolationUnavailable, match="Operation not permitted") as info:
        _evaluate(FIXTURES / "cpu_cheats" / "honest.py", isolation_mode="required")
    assert info.value.where == "harness.isolation"


def test_auto_where_unshare_is_not_permitted_falls_back_with_a_warning_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default, `auto`, on a machine that refuses namespaces (a non-root user without user namespaces): the
    jail falls back to the socket guard, the candidate is still evaluated, the report says what is missing and
    the evaluator logs it once."""
    from structlog.testing import capture_logs

    fake = tmp_path / "jail.py"  # what jail.py does there: records the failure, asks for the guard, execs
    fake.write_text("import json, os, sys\ncmd = sys.argv[sys.argv.index('--') + 1:]\n"
                    "os.environ['KERNELWRIGHT_ISOLATION'] = json.dumps({'namespaces': [], 'filesystem': False, "
                    "'limits': ['nofile'], 'cgroup_pids': '', 'unavailable': {'namespaces': "
                    "'unshare(net+mount): Operation not permitted'}})\n"
                    "os.environ['KERNELWRIGHT_SOCKET_GUARD'] = '1'\nos.execv(cmd[0], cmd)\n")
    monkeypatch.setattr(isolation, "JAIL_SCRIPT", fake)
    assert EvalSettings().isolation == "auto"
    with capture_logs() as logs:
        report = _evaluate(FIXTURES / "cpu_cheats" / "honest.py")
    assert report.status == "passed", report.message
    said = report.resources["isolation"]
    assert "namespaces: none (unshare(net+mount): Operation not permitted)" in said
    assert "socket guard only (weaker" in said and "file system: not isolated" in said
    warned = [e for e in logs if e["event"] == "isolation_weaker_than_full"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning", logs
    assert "Operation not permitted" in warned[0]["missing"]["namespaces"]


def test_describe_never_claims_what_did_not_take_effect() -> None:
    partial = {"namespaces": [], "filesystem": False, "limits": ["nofile"], "cgroup_pids": "",
               "unavailable": {"namespaces": "unshare: Operation not permitted", "cgroup_pids": "read-only"}}
    text = describe(partial)
    assert "namespaces: none (unshare: Operation not permitted)" in text
    assert "socket guard only (weaker" in text and "file system: not isolated" in text
    assert "cgroup pids: unavailable (read-only)" in text
    assert describe(None, "off").startswith("off")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the jail is Linux-only")
def test_socket_guard_fallback_refuses_sockets(tmp_path: Path) -> None:
    """Where no network namespace can be made the worker runs with the audit-hook guard."""
    import subprocess

    code = ("from kernelwright.tools.sandbox.isolation import install_socket_guard\nimport socket\n"
            "install_socket_guard()\ntry:\n    socket.socket()\n    print('made')\nexcept PermissionError as e:\n"
            "    print('refused', e)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    out = run.stdout
    assert out.startswith("refused") and "network access is blocked" in out, run.stderr[-2000:]


@needs_namespaces
def test_startup_overhead_of_the_sandbox_is_small() -> None:
    """Worker start-up with the jail against without (CPU): printed for the record, bounded loosely."""
    def start_s(mode: str) -> float:
        worker = SandboxWorker("candidate", WorkerOptions(device="cpu", isolation=IsolationPolicy(mode=mode)))
        t0 = time.perf_counter()
        try:
            worker.start()
            return time.perf_counter() - t0
        finally:
            worker.close()

    off = min(start_s("off") for _ in range(3))
    on = min(start_s("auto") for _ in range(3))
    print(json.dumps({"worker_start_s": {"isolation_off": round(off, 3), "isolation_on": round(on, 3)}}))
    assert on < off + 1.0, (on, off)


@needs_namespaces
def test_tools_that_run_candidate_code_start_in_the_jail_too(planted: dict[str, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """compute-sanitizer (and ncu, through the same `jailed`) and the candidate process it starts: no home, no
    network, no writes outside; a private /tmp for the tool's lock file."""
    from kernelwright.tools.harness import sanitizer

    fake = tmp_path / "tools" / "compute-sanitizer"
    fake.parent.mkdir()
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        cat {planted["home_secret"]} 2>/dev/null && echo home:read || echo home:hidden
        echo lock > /tmp/nsight-compute-lock && echo tmp:writable
        echo x > {fake.parent / "dropped"} 2>/dev/null && echo outside:wrote || echo outside:refused
        echo x > {planted["home"] / "dropped"} 2>/dev/null && echo home:wrote || echo home:refused
        cat /proc/self/net/tcp | wc -l | sed 's/^/tcp-lines:/'
        echo "========= ERROR SUMMARY: 0 errors"
        """))
    fake.chmod(0o755)
    monkeypatch.setattr(sanitizer, "find_compute_sanitizer", lambda: str(fake))
    report = sanitizer.sanitize(str(PROBLEM), str(FIXTURES / "cpu_cheats" / "honest.py"), timeout_s=60,
                                isolation=IsolationPolicy())
    out = report.output_tail
    assert "home:hidden" in out and "tmp:writable" in out and "outside:refused" in out, out
    assert "tcp-lines:1" in out  # the namespace's own table: only the header, no host connection
    assert SECRET not in out and not (fake.parent / "dropped").exists() and not (planted["home"] / "dropped").exists()
    assert not Path("/tmp/nsight-compute-lock").exists() or "lock" != Path("/tmp/nsight-compute-lock").read_text().strip()


def _full_isolation_missing() -> str | None:
    if _MISSING is not None:
        return _MISSING
    state = probe()
    gone = isolation.missing(state)
    return f"this machine lacks part of the full isolation: {gone}" if gone else None


@pytest.mark.skipif(_full_isolation_missing() is not None, reason=_full_isolation_missing() or "")
def test_required_isolation_runs_where_everything_is_available(planted: dict[str, Path]) -> None:
    report = _evaluate(FIXTURES / "cpu_cheats" / "honest.py", isolation_mode="required")
    assert report.status == "passed", (report.reason, report.message)
    assert "cgroup pids: on" in report.resources["isolation"] and "capabilities: none" in report.resources["isolation"]


def _cgroup_missing() -> str | None:
    if _MISSING is not None:
        return _MISSING
    cg = probe().get("cgroup_pids") or ""
    return None if cg == "available" else f"no writable pids cgroup here ({cg})"


@pytest.mark.skipif(_cgroup_missing() is not None, reason=_cgroup_missing() or "")
def test_process_and_thread_count_is_bounded_by_the_pids_cgroup(planted: dict[str, Path]) -> None:
    cand = _candidate(planted["candidates"], "spawner", """
        import threading, time
        started = 0
        try:
            for _ in range(500):
                threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
                started += 1
        except RuntimeError as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        else:
            outcome = "no limit"
        raise RuntimeError(f"threads started: {started}; {outcome}")
        """)
    options = WorkerOptions(device="cpu", isolation=IsolationPolicy(pids_max=64))
    with Evaluator(PROBLEM, FAST, options) as ev:
        report = ev.evaluate(cand)
    started = int(report.message.split("threads started: ")[1].split(";")[0])
    assert started < 64 and "can't start new thread" in report.message, report.message


@pytest.mark.skipif(_cgroup_missing() is not None, reason=_cgroup_missing() or "")
def test_a_process_left_behind_by_a_candidate_is_killed_with_its_workers_cgroup() -> None:
    """A child the candidate leaves running outlives its worker's process group; the worker's pids cgroup
    holds it, and the harness kills it when it removes the cgroup."""
    root = Path("/sys/fs/cgroup/pids") if Path("/sys/fs/cgroup/pids").is_dir() else Path("/sys/fs/cgroup")
    before = set(root.glob("kernelwright-worker-*"))
    with Evaluator(PROBLEM, FAST, WorkerOptions(device="cpu")) as ev:
        report = ev.evaluate(FIXTURES / "cpu_cheats" / "background_process.py")
    assert report.reason == "background_process", (report.reason, report.message)
    # every cgroup emptied (stragglers killed) and removed; a live process's (another test run's worker) is not ours
    assert {p for p in set(root.glob("kernelwright-worker-*")) - before if not _alive(p)} == set()


@pytest.mark.skipif(_cgroup_missing() is not None, reason=_cgroup_missing() or "")
def test_a_worker_cgroup_left_by_a_process_that_never_closed_its_evaluator_is_removed_by_the_next_jail() -> None:
    root = Path("/sys/fs/cgroup/pids") if Path("/sys/fs/cgroup/pids").is_dir() else Path("/sys/fs/cgroup")
    stale = root / f"kernelwright-worker-{_exited_pid()}"  # its pid reused within the test: unlikely
    stale.mkdir()
    alive = root / f"kernelwright-worker-{os.getpid()}-x"  # not a worker's name: never touched
    alive.mkdir()
    try:
        with Evaluator(PROBLEM, FAST, WorkerOptions(device="cpu")) as ev:
            ev.functional_form()  # starts the reference worker in its jail
        assert not stale.exists()
        assert alive.exists()
    finally:
        for path in (stale, alive):
            if path.exists():
                path.rmdir()


def _alive(cgroup: Path) -> bool:
    try:
        os.kill(int(cgroup.name.rsplit("-", 1)[1]), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True
    return True


def _exited_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
