"""The harness settings a bench's rows are judged and timed with (`HarnessSettings`): how many trials and seeds verify
a candidate, the tolerances on top of the precision profile, the float64 arbiter, which baselines run and how
torch.compile is asked, and how the timer samples (tools.harness.evaluate.EvalSettings and its BenchSettings). The
results folder's manifest records them beside the search settings, so `--resume` refuses to mix rows judged or
timed under other settings (a row verified with the arbiter on beside one without it, say).

Not compared (they decide when the harness gives up or how it is confined, not what a row says): the precision
profile (the manifest's own field, compared already), the build settings, every timeout, the host memory limit, the
standby worker, the jail (isolation) and its paths. A manifest written before these were recorded has none: such a
folder resumes without the comparison (unknown, as for search settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from kernelwright.eval.kernelbench.search import SettingDifference
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.measure.timing import BenchSettings

NOT_COMPARED = frozenset({"precision", "build", "load_timeout_s", "call_timeout_s", "min_call_timeout_s",
                          "call_timeout_factor", "timing_timeout_s", "compile_baseline_timeout_s",
                          "sanitize_timeout_s", "host_memory_limit_gb", "keep_standby", "isolation", "private_paths",
                          "visible_paths"})
TIMING_PREFIX = "timing."  # EvalSettings.bench's fields, as the config file's [timing] section names them


@dataclass(frozen=True)
class HarnessSettings:
    values: Mapping[str, Any]  # JSON values by name: "n_trials", "float64_arbiter", "timing.warmup_ms", ...

    @classmethod
    def of(cls, settings: EvalSettings) -> HarnessSettings:
        values: dict[str, Any] = {}
        for f in fields(EvalSettings):
            if f.name in NOT_COMPARED:
                continue
            value = getattr(settings, f.name)
            if isinstance(value, BenchSettings):
                values.update({TIMING_PREFIX + k: v for k, v in value.to_dict().items()})
            elif f.name == "tolerances":
                values[f.name] = {dtype: tol.to_dict() for dtype, tol in sorted(value.items())}
            else:
                values[f.name] = value
        return cls(values)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)

    @classmethod
    def from_dict(cls, data: Any) -> HarnessSettings | None:
        """As to_dict wrote it; None (unknown) for a manifest without them or with something else there."""
        return cls(dict(data)) if isinstance(data, Mapping) else None

    def differences(self, recorded: HarnessSettings) -> list[SettingDifference]:
        """The settings asked now that differ from `recorded`, each named as the config file sets it. A setting
        one side lacks (a version that did not record it) is not compared."""
        return [SettingDifference(_name(key), repr(value), repr(recorded.values[key]))
                for key, value in self.values.items() if key in recorded.values and recorded.values[key] != value]


def _name(key: str) -> str:
    if key.startswith(TIMING_PREFIX):
        return f"timing setting {key.removeprefix(TIMING_PREFIX)}"
    return f"harness setting {key}"
