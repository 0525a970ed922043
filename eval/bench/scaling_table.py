"""The scaling benchmark's arithmetic and its table: rates, speedup and efficiency per GPU count and lanes per GPU,
and the verdict check that the same work judged on more GPUs, or with more lanes sharing a GPU, came out the same.

One `ConfigResult` per (workload, executor, GPU count, lanes per GPU): its wall time, the items it finished (bench:
problems with a row; agent run: candidates the harness evaluated) and each item's verdict (status and speedup over
eager). Lanes (`kernelwright bench --lanes-per-gpu K`: K problems at once per GPU, their timings taking turns through
the GPU's gate) exist for the bench on the local executor only; every other configuration has 1.

- rate: items per minute of wall time.
- base: the same workload and executor at 1 lane and its smallest GPU count (1 GPU x 1 lane where measured; with no
  1-lane configuration, the fewest lanes).
- speedup: rate over the base's rate.
- efficiency (GPU scaling): speedup over the GPU ratio, rate_n / (n * rate_1) with the base's GPU count as 1; only
  for lines with the base's lanes. Lanes add no GPU, so a K-lane line has none: its figure is the next one.
- over 1 lane: rate over the rate of the same workload, executor and GPU count at 1 lane (K-lane lines only). Its
  ideal is not K: the timed phases still take turns on the GPU, so where a share g of one lane's wall time is spent
  timing, K lanes gain at most min(K, 1/g); what they overlap is start-up, builds and correctness checks.
- verdict check: per workload, every configuration is compared item by item with the reference (the first
  executor at 1 lane and its smallest GPU count): the status must be the same, and two measured speedups must agree
  within the noise band (|s - s_ref| <= noise * s_ref). For the bench, a problem missing from one configuration
  disagrees; for an agent run, only candidates both evaluated are compared (timings steer which candidates a search
  makes). Lane configurations are checked like GPU counts: lanes that disturbed each other's timings (a leaky gate)
  show up as speedups outside the band.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Workload = Literal["bench", "agent_run"]
UNITS: dict[str, str] = {"bench": "problems", "agent_run": "candidates"}
DEFAULT_NOISE = 0.10


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # bench: rows.ProblemStatus; agent run: the harness's report status
    speedup: float | None = None  # over eager, where measured


@dataclass(frozen=True)
class ConfigResult:
    workload: Workload
    executor: str
    gpus: int
    wall_s: float  # summed over the attempts that made it (a resumed configuration's earlier ones too)
    items: int
    cards: tuple[str, ...] = ()
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    attempts: int = 1
    note: str = ""  # what the reader must know about this configuration (e.g. the GPU count changes no work)
    folder: str = ""
    command: str = ""  # the command that made it (its last attempt's)
    lanes: int = 1  # problems at once per GPU (bench, local executor); last: result.json files from before lanes load

    @property
    def name(self) -> str:
        return config_name(self.workload, self.executor, self.gpus, self.lanes)

    @property
    def rate_per_min(self) -> float | None:
        return self.items / self.wall_s * 60 if self.wall_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cards"] = list(self.cards)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigResult:
        verdicts = {k: Verdict(v["status"], v.get("speedup")) for k, v in (data.get("verdicts") or {}).items()}
        return cls(data["workload"], data["executor"], int(data["gpus"]), float(data["wall_s"]), int(data["items"]),
                   tuple(data.get("cards") or ()), verdicts, int(data.get("attempts", 1)), data.get("note", ""),
                   data.get("folder", ""), data.get("command", ""), int(data.get("lanes", 1)))


def config_name(workload: str, executor: str, gpus: int, lanes: int = 1) -> str:
    """A configuration's folder under --out: bench-local-2gpu, bench-local-1gpu-2lanes. One lane keeps the name it
    had before lanes existed, so an --out of then resumes."""
    name = f"{workload.replace('_', '-')}-{executor}-{gpus}gpu"
    return name if lanes == 1 else f"{name}-{lanes}lanes"


@dataclass(frozen=True, slots=True)
class ScalingLine:
    """One row of the table."""

    workload: str
    executor: str
    gpus: int
    lanes: int
    wall_s: float
    items: int
    unit: str
    rate_per_min: float | None
    speedup: float | None  # over the base: `base_gpus` x `base_lanes`
    efficiency: float | None  # GPU scaling; None for lines at other lanes than the base's
    lane_speedup: float | None  # over 1 lane at the same GPU count; None at 1 lane or where that was not run
    base_gpus: int
    base_lanes: int
    cards: tuple[str, ...]
    note: str


@dataclass(frozen=True, slots=True)
class Disagreement:
    workload: str
    item: str
    config: str  # the configuration that differs from the reference
    reference: str
    what: str  # "status", "speedup" or "missing"
    detail: str

    def text(self) -> str:
        return f"{self.workload} {self.item}: {self.config} vs {self.reference}: {self.detail}"


def scaling_lines(results: Sequence[ConfigResult]) -> list[ScalingLine]:
    """One line per configuration, with the figures the module docstring defines."""
    lines = []
    for r in sorted(results, key=lambda r: (r.workload, r.executor, r.gpus, r.lanes)):
        group = [o for o in results if (o.workload, o.executor) == (r.workload, r.executor)]
        base = min(group, key=lambda o: (o.lanes, o.gpus))
        rate = r.rate_per_min
        speedup = _ratio(rate, base.rate_per_min)
        efficiency = speedup / (r.gpus / base.gpus) if speedup is not None and r.lanes == base.lanes else None
        one_lane = next((o for o in group if (o.gpus, o.lanes) == (r.gpus, 1)), None)
        lane_speedup = _ratio(rate, one_lane.rate_per_min) if r.lanes > 1 and one_lane is not None else None
        lines.append(ScalingLine(r.workload, r.executor, r.gpus, r.lanes, r.wall_s, r.items, UNITS[r.workload], rate,
                                 speedup, efficiency, lane_speedup, base.gpus, base.lanes, r.cards, r.note))
    return lines


def _ratio(rate: float | None, base_rate: float | None) -> float | None:
    return rate / base_rate if rate is not None and base_rate else None


def within_noise(speedup: float | None, reference: float | None, noise: float) -> bool:
    """Two measured speedups agree when they differ by at most `noise` of the reference; unmeasured ones agree
    only with unmeasured ones."""
    if speedup is None or reference is None:
        return speedup is None and reference is None
    return abs(speedup - reference) <= noise * reference


def compare_verdicts(results: Sequence[ConfigResult], noise: float = DEFAULT_NOISE) -> list[Disagreement]:
    """Every item whose verdict differs from its workload's reference configuration (module docstring)."""
    found: list[Disagreement] = []
    for workload in sorted({r.workload for r in results}):
        group = [r for r in results if r.workload == workload]
        executors = list(dict.fromkeys(r.executor for r in group))
        reference = min((r for r in group if r.executor == executors[0]), key=lambda r: (r.lanes, r.gpus))
        for other in sorted(group, key=lambda r: (r.executor, r.gpus, r.lanes)):
            if other is reference:
                continue
            found += _compare(reference, other, noise, every_item=workload == "bench")
    return found


def _compare(ref: ConfigResult, other: ConfigResult, noise: float, *, every_item: bool) -> list[Disagreement]:
    out = []
    keys = sorted(set(ref.verdicts) | set(other.verdicts)) if every_item else sorted(set(ref.verdicts) & set(other.verdicts))
    for key in keys:
        a, b = ref.verdicts.get(key), other.verdicts.get(key)
        if a is None or b is None:
            where = ref.name if a is None else other.name
            out.append(Disagreement(ref.workload, key, other.name, ref.name, "missing", f"no result in {where}"))
        elif a.status != b.status:
            out.append(Disagreement(ref.workload, key, other.name, ref.name, "status", f"{b.status} vs {a.status}"))
        elif not within_noise(b.speedup, a.speedup, noise):
            out.append(Disagreement(ref.workload, key, other.name, ref.name, "speedup",
                                    f"{_x(b.speedup)} vs {_x(a.speedup)} (noise band {noise:.0%})"))
    return out


def compared_items(results: Sequence[ConfigResult]) -> dict[str, int]:
    """Per workload, the items the verdict check looked at (bench: every problem; agent run: the candidates
    every configuration evaluated)."""
    out: dict[str, int] = {}
    for workload in sorted({r.workload for r in results}):
        sets = [set(r.verdicts) for r in results if r.workload == workload]
        out[workload] = len(set().union(*sets) if workload == "bench" else set.intersection(*sets))
    return out


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None else "-"


def _speedup(line: ScalingLine) -> str:
    """The speedup, naming its base where that is not 1 GPU x 1 lane."""
    if line.speedup is None:
        return "-"
    if line.base_lanes != 1:
        over = f"{line.base_gpus} GPU x {line.base_lanes} lanes"
    else:
        over = str(line.base_gpus) if line.base_gpus != 1 else ""
    return f"{line.speedup:.2f}x" + (f" (over {over})" if over else "")


def to_json(results: Sequence[ConfigResult], noise: float, pending: Sequence[str] = ()) -> dict[str, Any]:
    disagreements = compare_verdicts(results, noise)
    return {"noise": noise, "lines": [asdict(line) for line in scaling_lines(results)],
            "verdicts": {"agree": not disagreements, "compared": compared_items(results),
                         "disagreements": [asdict(d) for d in disagreements]},
            "pending": list(pending), "configs": [r.to_dict() for r in results]}


def markdown(results: Sequence[ConfigResult], noise: float, pending: Sequence[str] = ()) -> str:
    lines = ["# kernelwright scaling benchmark", "",
             "| workload | executor | GPUs | lanes | wall s | items | per min | speedup | efficiency | over 1 lane "
             "| cards | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for s in scaling_lines(results):
        lines.append(f"| {s.workload} | {s.executor} | {s.gpus} | {s.lanes} | {s.wall_s:.1f} | {s.items} {s.unit} | "
                     f"{_num(s.rate_per_min, '.2f')} | {_speedup(s)} | {_num(s.efficiency, '.0%')} | "
                     f"{_x(s.lane_speedup)} | {', '.join(s.cards) or '-'} | {s.note} |")
    disagreements = compare_verdicts(results, noise)
    compared = ", ".join(f"{n} {UNITS[w]} ({w})" for w, n in compared_items(results).items())
    lines += ["", "Speedup: rate over the same workload and executor at 1 GPU x 1 lane (its smallest count where that "
                  "was not run); efficiency: rate_n / (n * rate_1), GPU counts at the base's lanes only; over 1 lane: "
                  "rate over 1 lane on as many GPUs (its ideal is not K: timings still take turns on the GPU). "
                  f"Verdict check over {compared or 'nothing'}, noise band "
                  f"{noise:.0%}: " + ("every verdict agrees." if not disagreements
                                      else f"{len(disagreements)} disagreement(s):")]
    lines += [f"- {d.text()}" for d in disagreements]
    if pending:
        lines += ["", "Not finished (run again with --resume): " + ", ".join(pending)]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, results: Sequence[ConfigResult], noise: float,
                  pending: Sequence[str] = ()) -> tuple[Path, Path]:
    """<out>/scaling.json and <out>/scaling.md."""
    files = (out / "scaling.json", out / "scaling.md")
    _replace(files[0], json.dumps(to_json(results, noise, pending), indent=2))
    _replace(files[1], markdown(results, noise, pending))
    return files


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
