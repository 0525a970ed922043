"""Candidates for the harness benchmark: the offline translator's where it writes one, else a passthrough.

Each problem is prepared in its own child process (`python -m kernelwright.eval.bench.harness_prepare`),
watched by the parent: resident memory over the budget or a timeout kills it, and the problem gets the
passthrough candidate with that reason. Why: tracing a KernelBench problem runs its get_inputs(), and level 1
has 4-17 GB inputs; one traced in this process would take the machine's memory with it.

Inside the child the torch calls of the problem's own get_inputs() (torch.rand, randint, `* scale`, ...)
return uninitialised CPU tensors of the same shape, stride and dtype (tools.problem.inputs'
unfilled_problem_inputs): torch.export reads shapes, never values, so the candidate is the same (a test
compares) and its untouched pages cost no memory.
The manifest (`<candidates>/manifest.json`, one `CandidateEntry` per problem) is read and written here only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from kernelwright.agents.context import RunSettings
from kernelwright.eval.bench.passthrough_candidate import passthrough_source
from kernelwright.tools.procenv import scrubbed_env
from kernelwright.tools.sandbox.resources import tree_memory

CandidateKind = Literal["offline", "passthrough", "given"]  # given: a file in --candidates without a manifest entry
MANIFEST = "manifest.json"
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class CandidateEntry:
    problem: str  # the problem file's stem: the candidate is <candidates>/<problem>.py
    problem_path: str
    kind: CandidateKind
    why: str  # the offline variant used, or why there is no offline candidate
    variant: str | None = None
    input_bytes: int | None = None  # from get_inputs() on the meta device; None where that fails
    seconds: float = 0.0
    peak_rss_bytes: int = 0  # the preparing child's

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateEntry:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def read_manifest(folder: Path) -> dict[str, CandidateEntry]:
    path = folder / MANIFEST
    if not path.exists():
        return {}
    return {k: CandidateEntry.from_dict(v) for k, v in json.loads(path.read_text())["entries"].items()}


def write_manifest(folder: Path, entries: dict[str, CandidateEntry]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"entries": {k: entries[k].to_dict() for k in sorted(entries)}}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(folder / MANIFEST)  # a reader never sees half a manifest


def candidate_path(folder: Path, problem: str) -> Path:
    return folder / f"{problem}.py"


# ---------------------------------------------------------------- parent side

def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (a large number where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 50


def child_budget(cap_bytes: int, jobs: int) -> int:
    """A preparing child's memory budget: the cap, but never more than its share of half of what is free now."""
    return min(cap_bytes, available_bytes() // (2 * max(jobs, 1)))


def prepare_one(problem: Path, folder: Path, *, budget_bytes: int, timeout_s: float,
                passthrough: bool = True, preview: bool = RunSettings.offline_preview,
                allow_tf32: bool = False) -> CandidateEntry:
    """Write <folder>/<problem>.py (offline first variant, else passthrough) and return its entry; with
    `passthrough` False nothing is written where the translator gives no candidate (the entry says why).
    `preview`: the translator's kernel families behind RunSettings.offline_preview (on by default) too.
    `allow_tf32`: the precision profile the candidate will be judged under admits plain TF32
    (PrecisionProfile.allows_tf32)."""
    started = time.perf_counter()
    out = candidate_path(folder, problem.stem)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kw-prepare-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "kernelwright.eval.bench.harness_prepare", str(problem), str(out),
               str(result_file), str(budget_bytes), *(["--preview"] if preview else []),
               *(["--allow-tf32"] if allow_tf32 else [])]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=scrubbed_env(CUDA_VISIBLE_DEVICES=""), start_new_session=True)
        stderr: list[bytes] = []
        pipe = proc.stderr
        assert pipe is not None  # stderr=PIPE above
        reader = threading.Thread(target=lambda: stderr.append(pipe.read()), daemon=True)
        reader.start()
        peak, killed = _watch(proc, budget_bytes, timeout_s)
        reader.join(timeout=5)
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
    tail = (b"".join(stderr).decode(errors="replace").strip().splitlines() or [""])[-1][:300]
    why = killed or result.get("why") or f"preparation failed (exit {proc.returncode}): {tail}"
    kind: CandidateKind = "offline" if result.get("kind") == "offline" and out.exists() and not killed else "passthrough"
    if kind == "passthrough" and passthrough:
        out.write_text(passthrough_source(problem, why))
    elif kind == "passthrough":
        out.unlink(missing_ok=True)  # a candidate file a killed child left half written
    return CandidateEntry(problem.stem, str(problem.resolve()), kind, why, result.get("variant") if kind == "offline" else None,
                          result.get("input_bytes"), round(time.perf_counter() - started, 2), peak)


def _watch(proc: subprocess.Popen, budget_bytes: int, timeout_s: float) -> tuple[int, str | None]:
    """Poll the child's resident memory until it exits; kill it over budget or time. (peak RSS, why killed)."""
    deadline, peak = time.monotonic() + timeout_s, 0
    while proc.poll() is None:
        peak = max(peak, tree_memory(proc.pid).rss_bytes)
        why = (f"preparation killed: resident memory {peak / 1e9:.1f} GB over the {budget_bytes / 1e9:.1f} GB budget"
               if peak > budget_bytes else f"preparation killed: over {timeout_s:.0f} s" if time.monotonic() > deadline
               else None)
        if why:
            proc.kill()
            proc.wait()
            return peak, why
        time.sleep(POLL_S)
    return peak, None


def prepare_all(problems: Sequence[Path], folder: Path, *, budget_bytes: int, timeout_s: float = 600.0,
                jobs: int = 1, on_done: Callable[[CandidateEntry], None] | None = None,
                allow_tf32: bool = False) -> dict[str, CandidateEntry]:
    """Prepare every problem without an entry yet (the manifest is rewritten after each, so this resumes).
    `allow_tf32`: as prepare_one takes it."""
    entries = read_manifest(folder)
    pending = [p for p in problems if p.stem not in entries or not candidate_path(folder, p.stem).exists()]
    lock = threading.Lock()

    def one(problem: Path) -> None:
        entry = prepare_one(problem, folder, budget_bytes=child_budget(budget_bytes, jobs), timeout_s=timeout_s,
                            allow_tf32=allow_tf32)
        with lock:
            entries[problem.stem] = entry
            write_manifest(folder, entries)
        if on_done is not None:
            on_done(entry)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, pending))
    return entries


# ---------------------------------------------------------------- child side

def meta_input_bytes(module: Any) -> int | None:
    """Bytes of get_inputs()'s tensors, computed on the meta device (nothing allocated); None if it fails there."""
    import torch

    from kernelwright.tools.problem.inputs import input_bytes

    try:
        with torch.device("meta"):
            return input_bytes(module.get_inputs())
    except Exception:  # noqa: BLE001 - some input functions need real values (.numpy(), .item()); the size is optional
        return None


def _child(problem: Path, out: Path, result_file: Path, budget_bytes: int, preview: bool,
           allow_tf32: bool = False) -> None:
    from kernelwright.agents.offline import OfflineUnsupported, propose
    from kernelwright.agents.offline.trace import load_problem, weight_bytes
    from kernelwright.tools.problem.inputs import unfilled_problem_inputs

    result: dict[str, Any] = {"kind": "passthrough"}
    try:
        _, module = load_problem(problem)
        result["input_bytes"] = meta_input_bytes(module)
        result_file.write_text(json.dumps(result))  # the size survives a kill
        # Weights over a quarter of the budget are never initialised (the same candidate; they cost address
        # space only, which the limit below allows for).
        weights = weight_bytes(module) or 0
        lazy_weights = weights > budget_bytes // 4
        # A hard ceiling on address space behind the parent's RSS watch: the lazy inputs reserve their size.
        vm = _vm_bytes()
        limit = vm + 2 * (result["input_bytes"] or 0) + budget_bytes + (2 * weights if lazy_weights else 0)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        with unfilled_problem_inputs(problem):
            candidates = propose(problem, lazy_weights=lazy_weights, preview=preview, allow_tf32=allow_tf32)
        candidates[0].write(out)
        result.update(kind="offline", variant=candidates[0].variant, why=f"offline translator, variant {candidates[0].variant}"
                      + (f" (its {weights / 1e9:.1f} GB of weights traced uninitialised)" if lazy_weights else ""))
    except OfflineUnsupported as exc:
        result["why"] = f"offline translator: {exc.message}"
    except MemoryError:
        result["why"] = "preparation ran out of its address-space limit"
    except Exception as exc:  # noqa: BLE001 - any failure means a passthrough, with the reason
        result["why"] = f"preparation raised {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    result_file.write_text(json.dumps(result))


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="prepare one problem's candidate (a child of bench_harness)")
    parser.add_argument("problem", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("budget_bytes", type=int)
    parser.add_argument("--preview", action="store_true", help="kernel families awaiting GPU verification too")
    parser.add_argument("--allow-tf32", action="store_true",
                        help="the precision profile admits plain TF32 for fp32 GEMMs and convolutions")
    args = parser.parse_args(argv)
    _child(args.problem, args.out, args.result, args.budget_bytes, args.preview, args.allow_tf32)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
