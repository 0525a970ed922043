"""The GPU gate across processes: a timing (exclusive) and every other use of the GPU (shared) never overlap,
shared holders overlap each other, a waiting timing is not starved by new shared holders, a thread's nested holds
pass through, and without the gate's directory there is no gate. Other processes are real (spawned); that one
waits on the gate is read from /proc/locks, not guessed from how long it took."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernelwright.tools.measure.gpu_gate import GATE_ENV, GateOrderError, GpuGate, gate_for, host_gate_dir
from support.gate_children import WAIT_S, Holder, lock_lines, reader_stream, wait_until_blocked

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture()
def gate(tmp_path: Path) -> GpuGate:
    made = gate_for("0", {GATE_ENV: str(tmp_path / "gates")})
    assert made is not None
    return made


def _in_thread(target: Any) -> tuple[threading.Thread, threading.Event]:
    finished = threading.Event()

    def run() -> None:
        target()
        finished.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, finished


def _free_for(gate: GpuGate, mode: int) -> bool:
    """Whether a new holder (its own open file) could take the gate in `mode` now, without waiting."""
    fd = os.open(gate.path, os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _acquire(gate: GpuGate, mode: str, hold_s: float = 0.0) -> Any:
    def run() -> None:
        with gate.exclusive() if mode == "exclusive" else gate.shared():
            time.sleep(hold_s)
    return run


def test_an_exclusive_holder_keeps_shared_ones_of_another_process_waiting(gate: GpuGate) -> None:
    holder = Holder(gate.path, "exclusive")
    thread, finished = _in_thread(_acquire(gate, "shared"))
    wait_until_blocked(gate.path, os.getpid(), "READ")  # this process waits for the other's timing
    assert not finished.is_set()
    holder.release()
    thread.join(WAIT_S)
    assert finished.is_set() and gate.waited_shared_s > 0


def test_shared_holders_coexist_and_keep_an_exclusive_one_waiting(gate: GpuGate) -> None:
    holder = Holder(gate.path, "shared")
    with gate.shared():  # a second shared holder (this process) gets in at once
        assert [(blocked, mode) for blocked, mode, _ in lock_lines(gate.path)] == [(False, "READ")] * 2
    thread, finished = _in_thread(_acquire(gate, "exclusive"))
    wait_until_blocked(gate.path, os.getpid(), "WRITE")
    assert not finished.is_set()
    holder.release()
    thread.join(WAIT_S)
    assert finished.is_set() and gate.waited_exclusive_s > 0


def test_holders_in_one_process_exclude_each_other_too(gate: GpuGate) -> None:
    entered = threading.Event()
    leave = threading.Event()

    def timing() -> None:
        with gate.exclusive():
            entered.set()
            leave.wait(WAIT_S)

    timer, _ = _in_thread(timing)
    assert entered.wait(WAIT_S)
    other, finished = _in_thread(_acquire(gate, "shared"))  # another thread: its own open file, so it waits
    wait_until_blocked(gate.path, os.getpid(), "READ")
    assert not finished.is_set()
    leave.set()
    other.join(WAIT_S)
    assert finished.is_set()


def test_a_waiting_exclusive_holder_is_not_starved_by_a_stream_of_shared_ones(gate: GpuGate) -> None:
    stop = SPAWN.Event()
    readers = []
    for _ in range(4):  # four offset streams: at every moment some reader holds the gate
        ready = SPAWN.Event()
        proc = SPAWN.Process(target=reader_stream, args=(str(gate.path), ready, stop, 0.2), daemon=True)
        proc.start()
        assert ready.wait(WAIT_S)
        readers.append(proc)
        time.sleep(0.05)
    try:
        started = time.monotonic()
        with gate.exclusive():
            waited = time.monotonic() - started
            assert not _free_for(gate, fcntl.LOCK_SH)
        assert all(p.is_alive() for p in readers)  # the stream was still going when the timing got in
    finally:
        stop.set()
        for proc in readers:
            proc.join(WAIT_S)
    # New readers queue behind the waiting timing, so it waits for the holds in flight (0.2 s each), not for the
    # stream to end (30 s): without the turnstile, flock lets new readers in while any holds (checked: 30 s).
    assert waited < 1.5


def test_a_thread_passes_through_its_own_nested_holds(gate: GpuGate) -> None:
    twin = pickle.loads(pickle.dumps(gate))  # another object for the same file: the holds are the thread's
    with gate.exclusive():
        with twin.shared(), gate.exclusive(), twin.exclusive():
            assert not _free_for(gate, fcntl.LOCK_SH)
        assert not _free_for(gate, fcntl.LOCK_SH)  # the outer hold is still there after the nested ones end
    assert _free_for(gate, fcntl.LOCK_EX)
    with gate.shared():
        with pytest.raises(GateOrderError):
            with twin.exclusive():
                pass
        assert _free_for(gate, fcntl.LOCK_SH) and not _free_for(gate, fcntl.LOCK_EX)
    assert _free_for(gate, fcntl.LOCK_EX)


def test_no_gate_without_the_directory_and_one_file_per_gpu(tmp_path: Path) -> None:
    assert gate_for("0", {}) is None
    assert gate_for(None, {GATE_ENV: str(tmp_path)}) is None
    env = {GATE_ENV: str(tmp_path / "g")}
    zero, one = gate_for("0", env), gate_for("1", env)
    uuid = gate_for("GPU-8f2a/1", env)
    assert zero is not None and one is not None and uuid is not None
    assert zero.path == tmp_path / "g" / "gpu0.lock" and one.path == tmp_path / "g" / "gpu1.lock"
    assert uuid.path.parent == tmp_path / "g" and uuid.path.name == "gpuGPU-8f2a_1.lock"
    with zero.exclusive():
        assert _free_for(one, fcntl.LOCK_EX)  # another GPU's timing is not this one's business
        assert not _free_for(zero, fcntl.LOCK_SH)


def test_a_pickled_gate_is_the_same_gate_with_its_own_waits(gate: GpuGate) -> None:
    with gate.exclusive():
        pass
    gate.waited_exclusive_s = 1.5
    copy = pickle.loads(pickle.dumps(gate))
    assert copy == gate and copy.path == gate.path and copy.waited_s == 0.0
    ready, release = SPAWN.Event(), SPAWN.Event()
    proc = SPAWN.Process(target=_hold_pickled, args=(copy, ready, release), daemon=True)
    proc.start()
    try:
        assert ready.wait(WAIT_S)
        assert not _free_for(gate, fcntl.LOCK_SH)  # the copy in the child holds the very same file
    finally:
        release.set()
        proc.join(WAIT_S)
    assert _free_for(gate, fcntl.LOCK_EX)


def _hold_pickled(gate: GpuGate, ready: Any, release: Any) -> None:
    with gate.exclusive():
        ready.set()
        release.wait(WAIT_S)


@pytest.fixture()
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield tmp_path


def test_the_host_gate_directory_is_one_private_place_and_refused_when_not(temp_root: Path) -> None:
    first, again = host_gate_dir(), host_gate_dir()
    assert first == again == temp_root / f"kernelwright-gpu-gate-{os.getuid()}"  # every bench of the user shares it
    assert first.stat().st_mode & 0o777 == 0o700
    first.chmod(0o777)  # anyone could put files there: not trusted
    other = host_gate_dir()
    assert other != first and other.is_dir() and other.parent == temp_root
