"""The run folder's one owner: the names and shapes of its files, and the only code that reads or writes them.

    RUN_DIR/
      run.json             RunInfo: what the run was asked, where it runs, how it ended (merged field by field)
      events.jsonl         EventLog: one JSON object per line (graphs/events names the events and their fields)
      checkpoints.sqlite   LangGraph's checkpointer database (graphs/run opens it; only its name is here)
      report.html          the HTML report's default place (eval/report writes it)
      candidates/<id16>/   CandidateFolder, named by the first 16 characters of the candidate's id
        candidate.py       the kernel source; its id is tools.source_hash.candidate_id of this text
        meta.json          CandidateMeta: who proposed it and from what (lineage `parents`, tunable `params`)
        report.json        CandidateReport: the harness's report, plus the winner's memcheck verdict
        profile.json       CandidateProfile: the profiler's one-line summary and what it measured
      manual/              ManualFolder (`kernelwright run --manual`): the prompts a person answers
        NNN-<node>.prompt.md    the prompt for a person: what to answer, how, and the messages
        NNN-<node>.prompt.json  ManualPrompt: the same for programs (its messages, their hash)
        NNN-<node>.answer.md    the answer (`kernelwright answer` writes it atomically)

Why here, and why dataclasses: memory/, agents/, graphs/ and eval/ all read these files, so their owner lives
in tools/, the one layer every one of them may import. tools/ runs alone on a GPU box with only torch,
nvidia-ml-py, structlog and the standard library, so the models are frozen, slotted dataclasses with
`to_dict()`/`from_dict()` rather than pydantic models.

`from_dict` is tolerant: files written by earlier versions load (missing fields take their defaults, the old
lineage key `parent_ids` is read as `parents`); a file that is absent, unreadable or not a JSON object reads
as None. JSON files are replaced atomically, so a killed process never leaves half a file.

The report and the profile are other parts' records (the harness's `tools.harness.results.EvalReport`, the
profiler's result, e.g. `tools.measure.ncu`): their models keep the whole object as written and type the fields a
run's readers use.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from kernelwright.tools.source_hash import candidate_id

CANDIDATES_DIR = "candidates"
SOURCE_FILE = "candidate.py"
META_FILE = "meta.json"
REPORT_FILE = "report.json"
PROFILE_FILE = "profile.json"
RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS_FILE = "checkpoints.sqlite"
HTML_REPORT_FILE = "report.html"
MANUAL_DIR = "manual"
DEFAULT_RUNS_DIR = Path("runs")  # where run folders go unless the settings' runs_dir says otherwise
FOLDER_ID_CHARS = 16  # a candidate folder's name: its id's first characters

LINEAGE_KEY = "parents"  # the one name of a kernel's lineage, in meta.json, run.json, the state and the archive
_OLD_LINEAGE_KEYS = ("parent_ids",)  # what the run state and run.json's `best` called it before


def lineage_of(data: Mapping[str, Any]) -> tuple[str, ...]:
    """A record's parents under the lineage key, or under the old key of files and states written before."""
    for key in (LINEAGE_KEY, *_OLD_LINEAGE_KEYS):
        value = data.get(key)
        if value:
            return tuple(str(p) for p in value)
    return ()


# --- JSON files -----------------------------------------------------------------------------------------------

def _read_object(path: Path) -> dict[str, Any] | None:
    """The file's JSON object; None when it is absent, unreadable, not JSON or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_text(path: Path, text: str) -> None:
    """Replace the file atomically: a reader (or a resumed run, or a run waiting for an answer) never sees half
    of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_object(path: Path, data: Mapping[str, Any], *, indent: int | None = 2) -> None:
    _write_text(path, json.dumps(dict(data), default=str, indent=indent))


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


# --- the files' models ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateMeta:
    """meta.json: where a candidate came from. Written once, by the first proposal of its source."""

    id: str = ""  # candidate_id of the source (RunFolder.store_candidate fills it in)
    agent: str = ""  # translator | mutator | crossover | repair | offline | a plugin's name
    generation: int | None = None
    model: str = ""
    temperature: float | None = None
    prompt: str = ""  # template tag, e.g. translator@v1 ("offline" for the offline translator)
    prompt_sha256: str | None = None
    parents: tuple[str, ...] = ()
    repairs: int | None = None  # answer repair turns the proposal took
    repair_depth: int = 0  # how many diagnostic repairs led here
    variant: str | None = None  # the offline translator's variant
    params: Mapping[str, Any] | None = None  # the offline translator's tunable settings (None: not recorded)
    kept_aten_ops: tuple[str, ...] = ()
    seeded_from: str | None = None  # the archived kernel whose settings it reuses
    extra: Mapping[str, Any] = field(default_factory=dict)  # anything else its proposer recorded (plugins)

    _KNOWN = ("id", "agent", "generation", "model", "temperature", "prompt", "prompt_sha256", LINEAGE_KEY,
              *_OLD_LINEAGE_KEYS, "repairs", "repair_depth", "variant", "params", "kept_aten_ops", "seeded_from")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "agent": self.agent, "generation": self.generation, "model": self.model,
                               "temperature": self.temperature, "prompt": self.prompt}
        if self.prompt_sha256 is not None:
            out["prompt_sha256"] = self.prompt_sha256
        out[LINEAGE_KEY] = list(self.parents)
        if self.repairs is not None:
            out["repairs"] = self.repairs
        out["repair_depth"] = self.repair_depth
        if self.variant is not None:
            out.update(variant=self.variant, params=dict(self.params or {}), kept_aten_ops=list(self.kept_aten_ops))
        elif self.params is not None:
            out["params"] = dict(self.params)
        if self.seeded_from is not None:
            out["seeded_from"] = self.seeded_from
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateMeta:
        params = data.get("params")
        return cls(id=str(data.get("id") or ""), agent=str(data.get("agent") or ""),
                   generation=_int_or_none(data.get("generation")), model=str(data.get("model") or ""),
                   temperature=_float_or_none(data.get("temperature")), prompt=str(data.get("prompt") or ""),
                   prompt_sha256=data.get("prompt_sha256"), parents=lineage_of(data),
                   repairs=_int_or_none(data.get("repairs")), repair_depth=_int_or_none(data.get("repair_depth")) or 0,
                   variant=data.get("variant"), params=dict(params) if isinstance(params, Mapping) else None,
                   kept_aten_ops=tuple(str(op) for op in data.get("kept_aten_ops") or ()),
                   seeded_from=data.get("seeded_from"),
                   extra={k: v for k, v in data.items() if k not in cls._KNOWN})


@dataclass(frozen=True, slots=True)
class CandidateReport:
    """report.json: the harness's report as it returned it (`tools.harness.results.EvalReport.to_dict()`, or a failed
    build's report), later merged with the winner's memcheck verdict. `data` is the whole object; the
    properties type what the run's readers use."""

    data: Mapping[str, Any]

    @property
    def status(self) -> str:
        return str(self.data.get("status") or "error")  # a report that names no status is an error report

    @property
    def reason(self) -> str | None:
        return self.data.get("reason")

    @property
    def message(self) -> str:
        return str(self.data.get("message") or "")

    @property
    def stage(self) -> str | None:
        return self.data.get("stage")

    @property
    def speedup_vs_eager(self) -> float | None:
        return _float_or_none(self.data.get("speedup_vs_eager"))

    @property
    def speedup_vs_compile(self) -> float | None:
        return _float_or_none(self.data.get("speedup_vs_compile"))

    @property
    def gpu(self) -> dict[str, Any]:
        return dict(self.data.get("gpu") or {})

    @property
    def trials(self) -> list[dict[str, Any]]:
        return [dict(t) for t in self.data.get("trials") or () if isinstance(t, Mapping)]

    @property
    def timing(self) -> dict[str, Any]:
        return dict(self.data.get("timing") or {})

    @property
    def weak_checks(self) -> list[str]:
        return [str(w) for w in self.data.get("weak_checks") or ()]

    @property
    def kernel_usage(self) -> dict[str, Any]:
        """What the candidate launched (tools.verify.integrity.KernelUsage.to_dict()); empty when not traced."""
        value = self.data.get("kernel_usage")
        return dict(value) if isinstance(value, Mapping) else {}

    @property
    def floor(self) -> dict[str, Any]:
        """The floors its timed median was checked against (tools.harness.evaluate: the physical floor, and the
        problem's roofline with `floor_ratio` and `roofline_bound` where it was computed); empty when untimed."""
        value = self.data.get("floor")
        return dict(value) if isinstance(value, Mapping) else {}

    @property
    def error(self) -> dict[str, Any]:
        return dict(self.data.get("error") or {})

    @property
    def profile(self) -> dict[str, Any] | None:
        """A profile the harness itself took (`kernelwright evaluate --profile`); a run's profiler writes its
        own file instead (CandidateFolder.read_profile)."""
        value = self.data.get("profile")
        return dict(value) if isinstance(value, Mapping) else None

    @property
    def sanitizer(self) -> dict[str, Any] | None:
        """The memcheck verdict the report carries (tools.harness.sanitizer.SanitizeVerdict.to_dict()), if any."""
        verdict = self.data.get("sanitizer")
        return dict(verdict) if isinstance(verdict, Mapping) else None

    def updated(self, fields: Mapping[str, Any]) -> CandidateReport:
        return CandidateReport({**self.data, **fields})

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateReport:
        return cls(dict(data))


PROFILER_UNAVAILABLE = "profiler unavailable"  # how the summary of a profile that could not be made begins


@dataclass(frozen=True, slots=True)
class CandidateProfile:
    """profile.json: the profiler's one-line bottleneck summary and what it returned (its `kernels` with their
    timings and roofline numbers, or `available: false` and why). It is also what an evaluator's `profile()`
    answers (agents.evaluator), so the run writes the evaluator's word as it is."""

    summary: str
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def unavailable(cls, why: str, data: Mapping[str, Any] | None = None) -> CandidateProfile:
        """No profile: 'profiler unavailable: why'. `available: false` keeps the archive from taking the line
        as a profile."""
        return cls(f"{PROFILER_UNAVAILABLE}: {why}", {**(data or {}), "available": False})

    @property
    def available(self) -> bool:
        return self.data.get("available") is not False and not self.data.get("unavailable")

    @property
    def kernels(self) -> list[dict[str, Any]]:
        return [dict(k) for k in self.data.get("kernels") or () if isinstance(k, Mapping)]

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, **{k: v for k, v in self.data.items() if k != "summary"}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateProfile:
        return cls(str(data.get("summary") or ""), {k: v for k, v in data.items() if k != "summary"})


@dataclass(frozen=True, slots=True)
class RunInfo:
    """run.json: written in parts (the run's start, the graph's start, its end or failure) and merged, so every
    field may be missing. `data` is the whole object; the properties type what readers use."""

    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        return self.data.get("run_id")

    @property
    def problem(self) -> str | None:
        return self.data.get("problem")

    @property
    def started(self) -> str:
        return str(self.data.get("started") or "")

    @property
    def status(self) -> str | None:
        return self.data.get("status")

    @property
    def best(self) -> dict[str, Any]:
        """The winner (`id`, speedups, `parents`, memcheck's `sanitized`); empty until the run ends with one."""
        return dict(self.data.get("best") or {})

    @property
    def generations_done(self) -> int | None:
        return _int_or_none(self.data.get("generations_done"))

    @property
    def llm(self) -> dict[str, Any] | None:
        """The model plan a resume reuses (agents.llm.ModelPlan.to_dict()); None for runs before it was kept."""
        value = self.data.get("llm")
        return dict(value) if isinstance(value, Mapping) else None

    @property
    def models(self) -> list[str] | None:
        value = self.data.get("models")
        return [str(m) for m in value] if isinstance(value, list) else None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunInfo:
        return cls(dict(data))


# --- the events file ------------------------------------------------------------------------------------------

class EventLog:
    """events.jsonl's writer: thread-safe, append-only, every line flushed as it is written, so concurrent
    evaluation tasks interleave whole lines and a killed run loses at most the line being written."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path, self.run_id = Path(path), run_id
        self.resumed = self.path.exists() and self.path.stat().st_size > 0
        self._file: Any = None  # opened on the first event: a run that fails before starting leaves no handle
        self._closed = False
        self._lock = threading.Lock()
        self._log: Any = None

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            if self._closed:
                return
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
                # A logger of its own (not the process-wide structlog config): the CLI's console settings must
                # not filter or reformat the run's record. WriteLogger flushes after every line.
                self._log = structlog.wrap_logger(
                    structlog.WriteLogger(self._file),
                    processors=[_epoch, structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
                                structlog.processors.JSONRenderer(default=str)],
                    wrapper_class=structlog.BoundLogger,  # not the configured one: its level filter must not apply
                    context_class=dict, cache_logger_on_first_use=False,
                ).bind(run_id=self.run_id)
            self._log.info(event, **fields)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()


def _epoch(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    event["t"] = round(time.time(), 6)
    return event


def read_event_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The events, in file order, and how many lines could not be parsed (a kill mid-write)."""
    events: list[dict[str, Any]] = []
    bad = 0
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(event, dict):
                    events.append(event)
    except OSError:
        pass
    return events, bad


# --- the folders ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CandidateFolder:
    """RUN_DIR/candidates/<id16>/: one candidate's source and what was recorded about it."""

    path: Path

    @classmethod
    def of_source(cls, source: str | Path) -> CandidateFolder:
        """The folder of a candidate's source file (a record's `source_path`)."""
        return cls(Path(source).parent)

    @property
    def source_path(self) -> Path:
        return self.path / SOURCE_FILE

    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    @property
    def profile_path(self) -> Path:
        return self.path / PROFILE_FILE

    def candidate_id(self) -> str:
        """The full id from the metadata, else the folder's name (the id's first characters)."""
        meta = self.read_meta()
        return meta.id if meta is not None and meta.id else self.path.name

    def read_source(self) -> str:
        """The kernel source; OSError when it is missing (a candidate folder always has one)."""
        return self.source_path.read_text()

    def read_meta(self) -> CandidateMeta | None:
        data = _read_object(self.meta_path)
        return CandidateMeta.from_dict(data) if data is not None else None

    def has_report(self) -> bool:
        return self.report_path.exists()

    def read_report(self) -> CandidateReport | None:
        data = _read_object(self.report_path)
        return CandidateReport.from_dict(data) if data is not None else None

    def write_report(self, report: CandidateReport | Mapping[str, Any]) -> Path:
        """Replace the report; a half-written report never counts (a resumed run evaluates that candidate again)."""
        data = report.to_dict() if isinstance(report, CandidateReport) else dict(report)
        _write_object(self.report_path, data, indent=None)
        return self.report_path

    def update_report(self, fields: Mapping[str, Any]) -> CandidateReport:
        """Merge fields into the report (the winner's memcheck verdict), replacing it atomically."""
        report = (self.read_report() or CandidateReport({})).updated(fields)
        self.write_report(report)
        return report

    def read_profile(self) -> CandidateProfile | None:
        data = _read_object(self.profile_path)
        return CandidateProfile.from_dict(data) if data is not None else None

    def write_profile(self, profile: CandidateProfile) -> Path:
        _write_object(self.profile_path, profile.to_dict())
        return self.profile_path


@dataclass(frozen=True, slots=True)
class RunFolder:
    """RUN_DIR: the run's record, its events, its checkpoints and its candidates' folders."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def info_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def checkpoints_path(self) -> Path:
        return self.path / CHECKPOINTS_FILE

    @property
    def html_report_path(self) -> Path:
        return self.path / HTML_REPORT_FILE

    @property
    def candidates_path(self) -> Path:
        return self.path / CANDIDATES_DIR

    def is_run(self) -> bool:
        """The folder holds a run (its record, a candidate or an event); a bare directory does not."""
        return self.info_path.exists() or self.candidates_path.is_dir() or self.events_path.exists()

    def candidate(self, cid: str) -> CandidateFolder:
        return CandidateFolder(self.candidates_path / cid[:FOLDER_ID_CHARS])

    def candidates(self) -> list[CandidateFolder]:
        """Every candidate folder, in name order (empty when the run has none yet)."""
        if not self.candidates_path.is_dir():
            return []
        return [CandidateFolder(p) for p in sorted(self.candidates_path.iterdir()) if p.is_dir()]

    def store_candidate(self, source: str, meta: CandidateMeta) -> tuple[str, CandidateFolder]:
        """Write a proposed kernel's source and metadata: (its id, its folder). The id is the normalised-source
        hash; a kernel already in the folder keeps the source and lineage of its first proposal."""
        cid = candidate_id(source)
        folder = self.candidate(cid)
        folder.path.mkdir(parents=True, exist_ok=True)
        if not folder.source_path.exists():
            folder.source_path.write_text(source)
            _write_object(folder.meta_path, replace(meta, id=cid).to_dict())
        return cid, folder

    def read_info(self) -> RunInfo:
        """run.json (empty for a run that has not written it, or a file that is not a JSON object)."""
        return RunInfo.from_dict(_read_object(self.info_path) or {})

    def update_info(self, **fields: Any) -> RunInfo:
        """Merge fields into run.json, replacing it atomically (a half-written file never replaces a good one)."""
        info = RunInfo({**self.read_info().data, **fields})
        self.path.mkdir(parents=True, exist_ok=True)
        _write_object(self.info_path, info.data)
        return info

    @property
    def manual(self) -> ManualFolder:
        return ManualFolder(self.path / MANUAL_DIR)

    def event_log(self, run_id: str) -> EventLog:
        return EventLog(self.events_path, run_id)

    def read_events(self) -> tuple[list[dict[str, Any]], int]:
        return read_event_lines(self.events_path)


# --- manual mode -----------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ManualPrompt:
    """One prompt of a manual run: its number (NNN), the node that asked, the messages, and their hash (a resumed
    run asking the same again reuses the prompt and its answer)."""

    number: int
    node: str
    messages: tuple[dict[str, str], ...]
    temperature: float | None = None
    sha256: str = ""

    @property
    def stem(self) -> str:
        return f"{self.number:03d}-{self.node}"

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "node": self.node, "messages": list(self.messages),
                "temperature": self.temperature, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ManualPrompt:
        return cls(int(data.get("number") or 0), str(data.get("node") or "llm"),
                   tuple(dict(m) for m in data.get("messages") or () if isinstance(m, Mapping)),
                   _float_or_none(data.get("temperature")), str(data.get("sha256") or ""))


@dataclass(frozen=True, slots=True)
class ManualFolder:
    """RUN_DIR/manual/: prompts waiting for a person (or a program), and their answers."""

    path: Path

    def prompt_md(self, prompt: ManualPrompt) -> Path:
        return self.path / f"{prompt.stem}.prompt.md"

    def answer_path(self, prompt: ManualPrompt) -> Path:
        return self.path / f"{prompt.stem}.answer.md"

    def prompts(self) -> list[ManualPrompt]:
        """Every prompt written so far, oldest first."""
        if not self.path.is_dir():
            return []
        found = (_read_object(p) for p in sorted(self.path.glob("*.prompt.json")))
        return sorted((ManualPrompt.from_dict(d) for d in found if d is not None), key=lambda p: p.number)

    def pending(self) -> list[ManualPrompt]:
        return [p for p in self.prompts() if not self.answer_path(p).exists()]

    def write_prompt(self, prompt: ManualPrompt, text: str) -> Path:
        """The human-readable prompt first, then the JSON that makes it count as written (and pending)."""
        self.path.mkdir(parents=True, exist_ok=True)
        md = self.prompt_md(prompt)
        _write_text(md, text)
        _write_object(self.path / f"{prompt.stem}.prompt.json", prompt.to_dict())
        return md

    def read_answer(self, prompt: ManualPrompt) -> str | None:
        try:
            return self.answer_path(prompt).read_text(encoding="utf-8")
        except OSError:
            return None

    def write_answer(self, prompt: ManualPrompt, text: str) -> Path:
        """Atomically: the waiting run never reads half an answer."""
        path = self.answer_path(prompt)
        _write_text(path, text)
        return path
