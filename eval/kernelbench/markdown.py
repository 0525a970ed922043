"""The bench's table as Markdown (summary.md), and the cell formats the HTML page and the CLI share."""

from __future__ import annotations

from collections.abc import Sequence

from kernelwright.eval.kernelbench.rows import ProblemRow
from kernelwright.eval.kernelbench.table import FAST_P, BenchTable, LevelSummary, SpeedupStats, fast_p_name
from kernelwright.tools.problem.model_build import MODEL_MODE_TEXT
from kernelwright.tools.verify.precision import PROFILES, precision_profile

TRANSLATE_ONLY_NOTE = ("translate-only: candidates were written and compiled on a machine without a GPU; nothing was "
                       "verified or timed, so there are no correct, fast_p or speedup figures")
NO_GPU_NOTE = ("no GPU was visible: each run compiled its candidates and stopped, as `kernelwright run` does there; "
               "nothing was verified or timed, so there are no correct, fast_p or speedup figures")

FLOOR_NOTE = ("x floor: the verified kernel's median time over its problem's roofline floor on that card (bytes that "
              "must move at the measured copy bandwidth, or FLOPs at the datasheet peak for the dtype, whichever is "
              "longer; memory or compute says which); 1.00x is at the floor. library: the share of its GPU time in "
              "library kernels (cuBLAS, cuDNN, CUTLASS; docs/KERNEL_POLICY.md); \"CUDA graph\" there: the kernel "
              "replays its launches as a CUDA graph, where eager and torch.compile's default mode launch each kernel.")


def no_gpu_note(table: BenchTable) -> str:
    return TRANSLATE_ONLY_NOTE if table.translate_only else NO_GPU_NOTE


def share(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.0f}%)" if total else "0"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def precision_text(table: BenchTable) -> str:
    """The precision profile's label (tools.verify.precision owns it), or the mix when rows differ."""
    if len(table.precisions) == 1:
        (name,) = table.precisions
        return precision_profile(name).label() if name in PROFILES else f"Precision profile: {name}"
    return "Precision profiles (mixed): " + ", ".join(f"{name} ({n} problems)" for name, n in table.precisions.items())


def baseline_text(table: BenchTable) -> str:
    cards = ", ".join(table.gpus) or "the GPU of each run"
    return (f"Baselines: PyTorch eager and torch.compile, timed in each problem's own run on the same card as its "
            f"kernel ({cards}). {MODEL_MODE_TEXT}")


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows), ""]


def outcome_rows(table: BenchTable) -> tuple[list[str], list[list[object]]]:
    headers = ["level", "problems", "candidate", "compiled"]
    if not table.without_gpu:
        headers += ["correct", *(fast_p_name(p) for p in FAST_P)]
    rows = []
    for s in table.levels:
        row: list[object] = [s.level, s.problems, share(s.candidate, s.problems), share(s.compiled, s.problems)]
        if not table.without_gpu:
            row += [share(s.correct, s.problems), *(percent(s.fast_p_eager[fast_p_name(p)]) for p in FAST_P)]
        rows.append(row)
    return headers, rows


def _stats(stats: SpeedupStats) -> list[object]:
    return [times(stats.median_all), times(stats.geomean_all), times(stats.median_correct),
            times(stats.geomean_correct)]


def library_cell(row: ProblemRow) -> str:
    """'86.4%', or '86.4%, CUDA graph' for a kernel that replays a graph."""
    return percent(row.library_share) + (", CUDA graph" if row.cuda_graph else "")


def floor_cell(row: ProblemRow) -> str:
    """'3.20x (memory)': the verified kernel's time over its roofline floor and what bounds the floor."""
    if row.floor_ratio is None:
        return "-"
    return times(row.floor_ratio) + (f" ({row.floor_bound})" if row.floor_bound else "")


def speedup_rows(table: BenchTable) -> tuple[list[str], list[list[object]]]:
    headers = ["level", *(f"vs {baseline} {stat} ({over})" for baseline in ("eager", "torch.compile")
                          for over in ("all", "correct") for stat in ("median", "geomean")),
               "torch.compile vs eager median (correct)", "x floor median (correct)"]
    return headers, [[s.level, *_stats(s.vs_eager), *_stats(s.vs_compile), times(s.compile_vs_eager_median),
                      times(s.median_floor_ratio)] for s in table.levels]


def spend_rows(table: BenchTable) -> tuple[list[str], list[list[object]]]:
    if table.without_gpu:
        return ["level", "wall time", "failed"], [[s.level, duration(s.wall_s), s.failed] for s in table.levels]
    headers = ["level", "wall time", "GPU time", "LLM tokens", "LLM cost", "failed"]
    return headers, [[s.level, duration(s.wall_s), duration(s.gpu_s), f"{s.tokens:,}",
                      f"${s.cost_usd:.2f}" if s.cost_usd else "-", s.failed] for s in table.levels]


def problem_rows(rows: Sequence[ProblemRow], without_gpu: bool = False) -> tuple[list[str], list[list[object]]]:
    headers = ["problem", "status", "candidate", "compiled", "correct", "vs eager", "vs torch.compile", "x floor",
               "library", "seconds", "reason"]
    yes = {True: "yes", False: "no"}
    return headers, [[r.key, r.status if not r.failure else f"failed ({r.failure})", yes[r.candidate],
                      yes[r.compiled], "-" if without_gpu else yes[r.verified],
                      times(r.speedup_vs_eager), times(r.speedup_vs_compile), floor_cell(r), library_cell(r),
                      f"{r.wall_s:.0f}", r.reason or "-"]
                     for r in rows]


def fast_p_compile_line(overall: LevelSummary) -> str:
    return "fast_p over torch.compile (all levels): " + ", ".join(
        f"{fast_p_name(p)} {percent(overall.fast_p_compile[fast_p_name(p)])}" for p in FAST_P)


def markdown(table: BenchTable, title: str = "kernelwright bench", search: str | None = None) -> str:
    """`search`: the line on the search settings the rows were made with (the bench's manifest owns them)."""
    lines = [f"# {title}", "", precision_text(table) + ".", ""] + ([search + ".", ""] if search else [])
    if table.without_gpu:
        lines += [f"_{no_gpu_note(table)}._", ""]
    else:
        lines += [baseline_text(table), "", "fast_p: share of all problems that are correct and more than p times faster "
                  "than eager (KernelBench's fastp). Speedups over all problems count a problem with no verified "
                  "kernel as 1.0x.", "", FLOOR_NOTE, ""]
    lines += _table(*outcome_rows(table))
    if not table.without_gpu:
        lines += _table(*speedup_rows(table)) + [fast_p_compile_line(table.overall), ""]
    lines += _table(*spend_rows(table))
    lines += ["## Problems", "", *_table(*problem_rows(table.rows, table.without_gpu))]
    return "\n".join(lines).rstrip() + "\n"
