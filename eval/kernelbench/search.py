"""The search settings a bench's rows are made with (`SearchSettings`): the agent graph's RunSettings as the CLI
built them, the per-problem budget, the models and the archive. The results folder's manifest records them, so a
table says what budget made its figures and `--resume` refuses to mix rows made with other settings.

Not compared (nor recorded where they are not in these objects), because they decide where and how fast
problems run, not what a row says: --gpus, --lanes-per-gpu and --jobs (lanes), --log-level, RunSettings.eval_concurrency
(evaluations in flight), RunSettings.gpu_description/gpu_arch (each run fills them in from its own card), and
--timeout-minutes: it only decides when a stuck problem's process is killed, and such a row states its own limit
in its reason ("killed after N s").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ModelPlan
from kernelwright.graphs.run import RunBudget

NOT_COMPARED = frozenset({"eval_concurrency", "gpu_description", "gpu_arch"})  # RunSettings fields; why: above
# RunSettings fields added after manifests were first written, each with the behaviour a manifest without it was
# made with (the setting did not exist: its feature was off). Not the current default: when a default changes, an
# old folder must still read as what made its rows, so a resume under the new default is refused, not mixed in.
ABSENT_MEANS: dict[str, Any] = {"offline_fill": False, "offline_graphs": False, "offline_channels_last_kept": False}
OFFLINE = ModelPlan().describe()  # "offline translator + tuner", as the run and the bench's start line say it


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g}"


# `kernelwright bench`'s flag for each setting it sets, and how its value is written there; the other RunSettings
# come from the config file (or kernelwright's defaults).
FLAGS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "generations": ("--generations", str),
    "candidates_per_generation": ("--candidates", str),
    "population": ("--population", str),
    "budget.candidates": ("--max-candidates", str),
    "budget.wall_s": ("--max-minutes", _minutes),
    "budget.tokens": ("--max-tokens", str),
    "budget.cost_usd": ("--max-cost", lambda v: f"{v:g}"),
    "models": ("--model", lambda v: " --model ".join(v) if v else f"none ({OFFLINE})"),
    "critic": ("--critic-model", lambda v: v or "none"),
    "archive": ("--archive", lambda v: v or "none"),
}


@dataclass(frozen=True)
class SettingDifference:
    name: str  # the flag, or "run setting X" for one from the config file
    asked: str
    recorded: str

    def text(self) -> str:
        return f"{self.name} {self.asked} (recorded: {self.recorded})"


@dataclass(frozen=True)
class SearchSettings:
    run: RunSettings = field(default_factory=RunSettings)
    budget: RunBudget = field(default_factory=RunBudget)
    models: tuple[str, ...] = ()  # the proposers, taking turns; none: the offline translator and tuner
    critic: str | None = None
    archive: str | None = None  # the archive's folder, absolute; None: no archive

    @classmethod
    def of(cls, run: RunSettings, budget: RunBudget, models: ModelPlan, archive: Path | None) -> SearchSettings:
        """The settings of a bench's runs; `models` is the plan graphs.run chose (the named, else configured models,
        else offline), so a model named by the config or KERNELWRIGHT_MODEL is recorded too."""
        return cls(run, budget, tuple(m.name for m in models.proposers),
                   models.critic.name if models.critic and models.proposers else None,
                   str(Path(archive).resolve()) if archive is not None else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSettings:
        """As to_dict wrote it; a setting this version does not know is dropped, one it lacks takes what its absence
        meant (ABSENT_MEANS), else its default. TypeError/ValueError/KeyError for data that is no settings record."""
        run_known = {f.name for f in fields(RunSettings)}
        run: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(data["run"]).items()
                               if k in run_known}  # JSON keeps tuples (temperatures) as lists
        run = {**ABSENT_MEANS, **run}
        budget_known = {f.name for f in fields(RunBudget)}
        return cls(RunSettings(**run), RunBudget(**{k: v for k, v in dict(data["budget"]).items() if k in budget_known}),
                   tuple(str(m) for m in data.get("models") or ()), data.get("critic"), data.get("archive"))

    def compared(self) -> dict[str, Any]:
        """Every setting that shapes a row, by key (a RunSettings field, budget.X, models, critic, archive)."""
        run = {f.name: getattr(self.run, f.name) for f in fields(RunSettings) if f.name not in NOT_COMPARED}
        budget = {f"budget.{f.name}": getattr(self.budget, f.name) for f in fields(RunBudget)}
        return {**run, **budget, "models": self.models, "critic": self.critic, "archive": self.archive}

    def differences(self, recorded: SearchSettings) -> list[SettingDifference]:
        """The settings asked now that differ from `recorded`, each named as the user sets it."""
        asked_values, recorded_values = self.compared(), recorded.compared()
        return [_difference(key, asked_values[key], recorded_values.get(key)) for key in asked_values
                if asked_values[key] != recorded_values.get(key)]

    def describe(self) -> str:
        """One line for a table: who proposes, how many generations and candidates, the budget, the archive."""
        s, b = self.run, self.budget
        who = ("models " + ", ".join(self.models) + (f" (critic: {self.critic})" if self.critic else "")
               if self.models else OFFLINE)
        gens = f"{s.generations} generation{'s' if s.generations != 1 else ''}"
        limits = [f"{b.candidates} evaluations" if b.candidates else "", f"{_minutes(b.wall_s)} min" if b.wall_s else "",
                  f"{b.tokens:,} tokens" if b.tokens else "", f"${b.cost_usd:g}" if b.cost_usd else ""]
        limits = [x for x in limits if x]
        budget = ("at most " + _and(limits) + " per problem") if limits else "no limit per problem"
        archive = f"archive {self.archive}" if self.archive else "no archive"
        return (f"Search: {who}, {gens} x {s.candidates_per_generation} candidates, population {s.population}, "
                f"{budget}, {archive}")


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _difference(key: str, asked: Any, recorded: Any) -> SettingDifference:
    name, write = FLAGS.get(key, (f"run setting {key}", repr))
    return SettingDifference(name, write(asked), write(recorded))


def flags_text(settings: SearchSettings) -> str:
    """The recorded settings as bench flags, for "pass the same flags again"."""
    values = settings.compared()
    optional = ("models", "critic", "archive")  # left out when unset: no flag stands for "none"
    return " ".join(f"{flag} {write(values[key])}" for key, (flag, write) in FLAGS.items()
                    if values[key] or key not in optional)
