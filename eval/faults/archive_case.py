"""The Chroma archive locked by another process for the whole run: the run must finish, the archive must open
intact afterwards, and the kernels it could not store stay marked unarchived (a later archive step stores them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from structlog.testing import capture_logs

from kernelwright.eval.faults.case import FaultOutcome
from kernelwright.eval.faults.scripted_run import answer, lost_work, run, settings

_HOLD = ("import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)\n")


def run_archive_locked(scratch: Path) -> FaultOutcome:
    # chromadb only for this case, so the GPU cases run on a machine without it
    from kernelwright.memory.archive import KernelArchive
    from kernelwright.memory.embedding import HashedEmbedding

    path = scratch / "archive"
    # opened before the lock is taken (opening takes it too, and a run that cannot open its archive runs
    # without one): the lock is then in the way of every read and write the run makes
    archive = KernelArchive.open_local(path, embedding=HashedEmbedding(), lock_timeout_s=1.0)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(path / ".kernelwright.lock")], stdout=subprocess.PIPE,
                              text=True)
    log = scratch / "evaluated.log"
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        llm = GenericFakeChatModel(messages=iter([AIMessage(answer(1.5))]))
        try:
            with capture_logs() as logs:
                result = run(scratch / "runs", log, settings(1, 1), run_id="locked", llm=llm, archive=archive)
        except Exception as exc:  # noqa: BLE001 - the lock stopped the run: not contained
            return FaultOutcome(False, type(exc).__name__, 0, str(exc)[:300])
        finally:
            archive.close()
    finally:
        holder.kill()
        holder.wait()
    warnings = sorted({f"{e['event']}: {str(e.get('error', '')).split(':')[0]}" for e in logs
                       if e.get("log_level") == "warning" and "archive" in str(e.get("event"))})
    lost, counted = lost_work(log, result)
    unarchived = [r for r in result.state["candidates"].values() if r.get("status") == "passed" and not r.get("archived")]
    reopened = KernelArchive.open_local(path, embedding=HashedEmbedding(), create=False)
    try:
        count = reopened.count()
    finally:
        reopened.close()
    ok = result.speedup_vs_eager == 1.5 and lost == 0 and bool(warnings) and count == 0 and len(unarchived) == 1
    return FaultOutcome(ok, "; ".join(warnings) or "(no warning)", lost,
                        f"{counted}; archive reopens intact ({count} records); {len(unarchived)} kernel(s) left "
                        "unarchived in the run folder for a later archive step")
