"""The archive as seen from the agent graph: retrieve examples safely, format them for a prompt,
and archive a run's verified candidates.

A graph node calls `examples_for_prompt(archive, functional, gpu_arch, k)` and puts the text
in the template's `${examples}` slot; a missing or damaged archive gives "" and a warning,
never a failed run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from kernelwright.memory.archive import KernelArchive, SearchHit
from kernelwright.memory.records import ArchiveRecord, RecordError, record_from_candidate
from kernelwright.tools.run_folder import RunFolder

log = structlog.get_logger(__name__)


def retrieve_examples(archive: KernelArchive | str | Path | None, query: Any, *, k: int = 3,
                      gpu_arch: str | None = None, diversity: float = 0.3, pool: int = 32,
                      per_run: int = 0) -> list[SearchHit]:
    """`archive.search(...)`, or [] with a warning when the archive cannot answer (whatever the cause)."""
    if archive is None:
        return []
    options: dict[str, Any] = {"gpu_arch": gpu_arch, "diversity": diversity, "pool": pool, "per_run": per_run}
    try:
        if not isinstance(archive, KernelArchive):
            with KernelArchive.open_local(archive, create=False, lock_timeout_s=10.0) as opened:
                return opened.search(query, k, **options)
        return archive.search(query, k, **options)
    except Exception as exc:  # the archive is an aid: no failure of it may stop a run
        log.warning("archive_unavailable", error=f"{type(exc).__name__}: {exc}",
                    archive=str(getattr(archive, "where", archive)))
        return []


def format_examples(hits: Sequence[SearchHit], max_chars: int = 12000) -> str:
    """A prompt section with the kernels, best first; whole examples only, within max_chars."""
    if not hits:
        return ""
    header = ("Verified kernels from earlier runs on related problems (for ideas; your problem's shapes and "
              "semantics may differ, so do not copy blindly):\n")
    parts: list[str] = [header]
    used = len(header)
    for n, hit in enumerate(hits, 1):
        block = _example_block(n, hit.record)
        if used + len(block) > max_chars:
            if n == 1:  # even the first is too long: keep its head rather than nothing
                parts.append(block[: max(0, max_chars - used - 20)] + "\n# ... (truncated)\n```\n")
            break
        parts.append(block)
        used += len(block)
    return "".join(parts) if len(parts) > 1 else ""


def _example_block(n: int, r: ArchiveRecord) -> str:
    facts = [f"ops: {r.signature.text()}"]
    if r.speedup_vs_eager is not None:
        speed = f"{r.speedup_vs_eager:.2f}x vs eager"
        if r.speedup_vs_compile is not None:
            speed += f", {r.speedup_vs_compile:.2f}x vs torch.compile"
        facts.append(f"measured: {speed} on {r.gpu_name or 'a GPU'} ({r.gpu_arch or '?'})")
    if r.techniques():
        facts.append("techniques: " + ", ".join(r.techniques()))
    if r.profile_summary:
        facts.append("profile: " + r.profile_summary)
    lines = "\n".join(f"- {f}" for f in facts)
    return f"\n### Example {n}\n{lines}\n```python\n{r.kernel_source.rstrip()}\n```\n"


def examples_for_prompt(archive: KernelArchive | str | Path | None, functional: Any, gpu_arch: str | None = None,
                        k: int = 3, *, max_chars: int = 12000) -> str:
    """The `${examples}` text for the translator / mutator: "" when there is nothing (or no archive)."""
    if not functional:
        return ""
    return format_examples(retrieve_examples(archive, functional, k=k, gpu_arch=gpu_arch), max_chars)


def archive_run(archive: KernelArchive, run_dir: str | Path, functional: Any, *, run_id: str = "",
                problem_name: str = "", verified_only: bool = True) -> dict[str, int]:
    """Add a run's evaluated candidates (those with a report in the run folder); returns the outcome counts.

    A candidate whose files are unreadable is skipped with a warning; the archive's own
    errors (ArchiveUnavailable) propagate so the caller decides how loud to be.
    """
    records: list[ArchiveRecord] = []
    skipped = 0
    for folder in RunFolder(Path(run_dir)).candidates():
        if not folder.has_report():
            continue
        try:
            record = record_from_candidate(folder.path, functional, run_id=run_id, problem_name=problem_name)
        except RecordError as exc:
            skipped += 1
            log.warning("archive_skip_candidate", folder=str(folder.path), error=str(exc))
            continue
        if record.verified or not verified_only:
            records.append(record)
    counts: dict[str, int] = {"skipped": skipped}
    for outcome in archive.add_many(records).values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
