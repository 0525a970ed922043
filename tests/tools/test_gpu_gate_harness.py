"""The harness on a GPU gate shared with other lanes (CPU self-test mode, real worker processes): a worker request
waits while another process times; a worker's start-up ('hello') waits too, holding the gate through a descriptor
of its own that it closes after; the Evaluator times each baseline and the candidate holding the gate exclusive
(another process cannot even share it then), and runs compute-sanitizer holding it shared."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.gpu_gate import GATE_ENV, GpuGate, gate_for
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox.isolation import IsolationPolicy
from kernelwright.tools.sandbox.pool import SandboxWorker, WorkerOptions
from support.gate_children import WAIT_S, Holder, held_by, wait_until_blocked
from support.paths import FIXTURES

NO_JAIL = IsolationPolicy(mode="off")  # the worker's pid is then the one /proc/locks names


@pytest.fixture()
def gate(tmp_path: Path) -> GpuGate:
    made = gate_for("0", {GATE_ENV: str(tmp_path / "gates")})
    assert made is not None
    return made


def _has_open(pid: int, path: Path) -> bool:
    folder = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd) == str(path.resolve()) for fd in folder.iterdir())


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


def test_a_worker_request_waits_while_another_process_times(gate: GpuGate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATE_ENV, str(gate.path.parent))  # as in a bench lane's process
    worker = SandboxWorker("reference", WorkerOptions(device="cpu", gate=gate, isolation=NO_JAIL))
    try:
        worker.start()
        assert worker.proc is not None and not _has_open(worker.proc.pid, gate.path)  # closed after 'hello'
        environ = Path(f"/proc/{worker.proc.pid}/environ").read_bytes().split(b"\0")
        assert not any(v.startswith(GATE_ENV.encode() + b"=") for v in environ)  # nor told where the gates are
        holder = Holder(gate.path, "exclusive")
        try:
            thread, out = _in_thread(lambda: worker.request("unload", timeout_s=WAIT_S))
            wait_until_blocked(gate.path, os.getpid(), "READ")
            assert not out
        finally:
            holder.release()
        thread.join(WAIT_S)
        assert out and out[0].header["ok"] and gate.waited_shared_s > 0
    finally:
        worker.close()


@pytest.mark.parametrize("jail", ["off", "auto"])
def test_a_worker_start_up_waits_while_another_process_times(gate: GpuGate, jail: str) -> None:
    holder = Holder(gate.path, "exclusive")
    worker = SandboxWorker("candidate", WorkerOptions(device="cpu", gate=gate, isolation=IsolationPolicy(mode=jail)))
    try:
        worker.launch()
        assert worker.proc is not None
        # in a jail the worker may have another pid: any process then (only the worker can wait here)
        wait_until_blocked(gate.path, worker.proc.pid if jail == "off" else None, "READ")
        holder.release()
        info = worker.wait_ready()
        assert info["pid"] and not held_by(gate.path, worker.proc.pid)
        if jail == "off":
            assert not _has_open(worker.proc.pid, gate.path)  # candidate code it runs later cannot hold the gate
    finally:
        holder.release()
        worker.close()


def _another_process_can_share(path: Path) -> bool:
    code = "import fcntl, os, sys\nfcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_SH | fcntl.LOCK_NB)"
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True).returncode == 0


def test_the_evaluator_times_holding_the_gate_exclusive_and_sanitizes_holding_it_shared(gate: GpuGate) -> None:
    settings = EvalSettings(compile_baseline=False, keep_standby=False, bench=BenchSettings(rep_ms=20.0, min_trials=10))
    probes: dict[str, list[bool]] = {}
    with Evaluator(FIXTURES / "problems" / "relu_affine_batched.py", settings, WorkerOptions(device="cpu", gate=gate)) as ev:
        ask = ev._ask

        def probing_ask(worker: SandboxWorker, op: str, **payload: Any) -> Any:
            if op in ("time", "outputs"):
                probes.setdefault(op, []).append(_another_process_can_share(gate.path))
            return ask(worker, op, **payload)

        ev._ask = probing_ask  # type: ignore[method-assign]
        report = ev.evaluate(FIXTURES / "cpu_cheats" / "honest.py")
        assert report.status == "passed", (report.reason, report.message)
        holder = Holder(gate.path, "exclusive")
        try:
            thread, out = _in_thread(lambda: ev.sanitize(FIXTURES / "cpu_cheats" / "honest.py"))
            wait_until_blocked(gate.path, os.getpid(), "READ")  # compute-sanitizer waits for the other's timing
            assert not out
        finally:
            holder.release()
        thread.join(WAIT_S)
        assert out
    # eager, eager with TF32 off, the candidate: each timed with the GPU's gate held exclusive; correctness calls
    # hold it shared (another lane's worker may share it then)
    assert probes["time"] == [False, False, False]
    assert probes["outputs"] and all(probes["outputs"])
    assert not held_by(gate.path, os.getpid())
