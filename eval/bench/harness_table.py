"""The harness benchmark's records: one row per problem, the run's summary, its Markdown table and final line.

The only reader and writer of `<out>/results/<problem>.json` and `<out>/summary.{json,md}`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Mode = Literal["evaluate", "baselines"]
# A row with one of these statuses, or one of these reasons, is the harness (or the machine) failing, not a
# candidate: what the "no problem ends in a crash or OOM kill" counts.
CRASH_STATUSES = {"crash", "killed", "reference_failure"}
CRASH_REASONS = {"crash", "timeout"}
GB = 1e9


@dataclass(frozen=True, slots=True)
class HarnessRow:
    problem: str
    mode: Mode
    status: str  # an EvalReport status, "baselines", or crash / killed / reference_failure
    reason: str | None = None
    message: str = ""  # first line only
    candidate_kind: str | None = None
    candidate_variant: str | None = None
    input_bytes: int | None = None
    stages_s: dict[str, float] = field(default_factory=dict)  # problem_load, reference, baselines, evaluate
    durations_s: dict[str, float] = field(default_factory=dict)  # the EvalReport's
    reference_durations_s: dict[str, float] = field(default_factory=dict)  # the Evaluator's
    eager_ms: float | None = None
    eager_strict_ms: float | None = None
    compiled_ms: float | None = None
    candidate_ms: float | None = None
    speedup_vs_eager: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)  # MemoryPeaks.to_dict()
    seconds: float = 0.0  # wall time of the whole problem
    warm_eval_s: list[float] = field(default_factory=list)  # --repeats: each warm evaluation's seconds
    prestarted: bool = False  # its workers started while the previous problem ran (not in `seconds`)
    precision: str | None = None
    error: dict[str, Any] | None = None

    @property
    def crashed(self) -> bool:
        return self.status in CRASH_STATUSES or self.reason in CRASH_REASONS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HarnessRow:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def row_path(out: Path, problem: str) -> Path:
    return out / "results" / f"{problem}.json"


def write_row(out: Path, row: HarnessRow) -> None:
    path = row_path(out, row.problem)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row.to_dict(), indent=2, default=str))
    tmp.replace(path)  # a killed run leaves a whole row or none


def read_rows(out: Path, problems: list[str]) -> dict[str, HarnessRow]:
    return {p: HarnessRow.from_dict(json.loads(row_path(out, p).read_text())) for p in problems
            if row_path(out, p).exists()}


def _peak(rows: list[HarnessRow], key: str) -> tuple[float | None, str | None]:
    found = [(value, r.problem) for r in rows if (value := r.memory.get(key)) is not None]
    if not found:
        return None, None
    value, problem = max(found)
    return round(value / GB, 3), problem


def summarise(rows: list[HarnessRow], total: int, *, partial: bool, wall_s: float,
              settings: dict[str, Any]) -> dict[str, Any]:
    rss, rss_at = _peak(rows, "rss_bytes")
    pss, pss_at = _peak(rows, "pss_bytes")
    gpu, gpu_at = _peak(rows, "gpu_tree_bytes")
    slowest = max(rows, key=lambda r: r.seconds, default=None)
    return {
        "partial": partial, "done": len(rows), "total": total, "crashes": [r.problem for r in rows if r.crashed],
        "statuses": dict(Counter(r.status for r in rows)),
        "reasons": dict(Counter(r.reason for r in rows if r.reason)),
        "max_peak_rss_gb": rss, "max_peak_rss_problem": rss_at, "max_peak_pss_gb": pss, "max_peak_pss_problem": pss_at,
        "max_peak_gpu_tree_gb": gpu, "max_peak_gpu_problem": gpu_at,
        "slowest_problem": slowest.problem if slowest else None,
        "slowest_seconds": round(slowest.seconds, 1) if slowest else None,
        "wall_s": round(wall_s, 1), "settings": settings,
    }


def final_line(summary: dict[str, Any]) -> str:
    def gb(value: Any, at: Any) -> str:
        return f"{value:.2f} GB ({at})" if value is not None else "n/a"

    crashes = summary["crashes"]
    return (f"harness bench{' (partial)' if summary['partial'] else ''}: {summary['done']}/{summary['total']} problems, "
            f"{len(crashes)} crash(es){' ' + ', '.join(crashes) if crashes else ''}; "
            f"max peak RSS {gb(summary['max_peak_rss_gb'], summary['max_peak_rss_problem'])}, "
            f"max peak PSS {gb(summary['max_peak_pss_gb'], summary['max_peak_pss_problem'])}; slowest "
            + (f"{summary['slowest_problem']} {summary['slowest_seconds']:.1f} s" if summary['slowest_problem'] else "n/a"))


def _num(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def _gb(value: Any) -> str:
    return _num(value / GB) if isinstance(value, (int, float)) else "-"


def verdict(row: HarnessRow) -> str:
    text = row.status + (f": {row.reason}" if row.reason else "")
    return text if row.status != "crash" else f"{text} ({row.message[:80]})"


def markdown(rows: list[HarnessRow], summary: dict[str, Any], mode: Mode) -> str:
    if mode == "baselines":
        lines = ["| problem | input GB | eager default ms | eager strict ms | strict / default | compiled ms | wall s | "
                 "peak RSS GB | verdict |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            ratio = r.eager_strict_ms / r.eager_ms if r.eager_ms and r.eager_strict_ms else None
            lines.append(f"| {r.problem} | {_gb(r.input_bytes)} | {_num(r.eager_ms, 3)} | {_num(r.eager_strict_ms, 3)} | "
                         f"{_num(ratio)} | {_num(r.compiled_ms, 3)} | {_num(r.seconds, 1)} | "
                         f"{_gb(r.memory.get('rss_bytes'))} | {verdict(r)} |")
    else:
        lines = ["| problem | input GB | candidate | problem load s | reference s | candidate load s | verify s | timing s | "
                 "wall s | peak RSS GB | peak PSS GB | peak GPU GB | verdict | vs eager |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            gpu = r.memory.get("gpu_tree_bytes")
            lines.append(
                f"| {r.problem} | {_gb(r.input_bytes)} | {r.candidate_kind or '-'} | {_num(r.stages_s.get('problem_load'))} | "
                f"{_num(r.stages_s.get('reference'))} | {_num(r.durations_s.get('load'))} | {_num(r.durations_s.get('verify'))} | "
                f"{_num(r.durations_s.get('timing'))} | {_num(r.seconds, 1)} | {_gb(r.memory.get('rss_bytes'))} | "
                f"{_gb(r.memory.get('pss_bytes'))} | {_gb(gpu)} | {verdict(r)} | "
                f"{_num(r.speedup_vs_eager) + 'x' if r.speedup_vs_eager else '-'} |")
    from kernelwright.tools.verify.precision import precision_profile

    profile = precision_profile(str((summary.get("settings") or {}).get("precision") or "strict"))
    lines = [profile.label() + ".", ""] + lines
    lines += ["", final_line(summary), "", "```json", json.dumps(summary, indent=2), "```"]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, rows: list[HarnessRow], total: int, mode: Mode, *, partial: bool, wall_s: float,
                  settings: dict[str, Any]) -> dict[str, Any]:
    summary = summarise(rows, total, partial=partial, wall_s=wall_s, settings=settings)
    (out / "summary.json").write_text(json.dumps({"summary": summary, "rows": [r.to_dict() for r in rows]},
                                                 indent=2, default=str))
    (out / "summary.md").write_text(markdown(rows, summary, mode))
    return summary
