"""The search settings a bench's rows are made with: recorded in bench.json, stated by the table, compared by
`--resume` (which refuses other settings, naming each, and goes on with the same), and unknown (said so, no
crash) for a manifest from before they were recorded. The problems are solved by a fake solver."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ChosenModel, ModelPlan, ModelSettings
from kernelwright.eval.kernelbench import bench
from kernelwright.eval.kernelbench.bench import (
    SEARCH_NOT_RECORDED,
    BenchError,
    BenchManifest,
    BenchOptions,
    plan_bench,
    rebuild_summary,
    run_bench,
)
from kernelwright.eval.kernelbench.full_job import RunJob
from kernelwright.eval.kernelbench.problems import BenchProblem
from kernelwright.eval.kernelbench.rows import ProblemRow, ResultStore
from kernelwright.eval.kernelbench.runner import Lane
from kernelwright.eval.kernelbench.search import SearchSettings
from kernelwright.graphs.run import RunBudget, RunSetup

LINE = ("Search: offline translator + tuner, 1 generation x 4 candidates, population 4, at most 200 evaluations and "
        "30 min per problem, no archive")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KERNELWRIGHT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The problems the bench solves (a fake graph solver: a verified row each)."""
    keys: list[str] = []

    def fake_solver(job: RunJob, out: Path):
        def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
            keys.append(problem.key)
            return ProblemRow(problem.key, problem.level, str(problem.path), "run", "verified", candidate=True,
                              compiled=True, verified=True, speedup_vs_eager=1.5, gpu="0", precision=job.precision)
        return solve

    monkeypatch.setattr(bench, "graph_solver", fake_solver)
    return keys


def _problems(root: Path, *stems: str) -> list[Path]:
    (root / "level1").mkdir(parents=True, exist_ok=True)
    paths = [root / "level1" / f"{stem}.py" for stem in stems]
    for path in paths:
        path.write_text("# a problem the fake solver never reads\n")
    return paths


def _job(generations: int = 1, **budget: float) -> RunJob:
    return RunJob(RunSetup(run_settings=RunSettings(generations=generations)),
                  RunBudget(**{"candidates": 200, "wall_s": 1800.0, **budget}))  # type: ignore[arg-type]


def _bench(paths: list[Path], out: Path, job: RunJob, resume: bool = False) -> None:
    plan = plan_bench(paths, BenchOptions(out, resume=resume), job, visible=lambda: ["0"])
    run_bench(plan)


def test_the_manifest_records_the_search_settings_and_the_table_states_them(tmp_path: Path, solved: list[str]) -> None:
    out = tmp_path / "out"
    _bench(_problems(tmp_path / "kb", "1_a"), out, _job(generations=1, tokens=5000))
    recorded = json.loads((out / "bench.json").read_text())["search"]
    assert recorded["run"]["generations"] == 1 and recorded["run"]["candidates_per_generation"] == 4
    assert recorded["budget"] == {"candidates": 200, "wall_s": 1800.0, "tokens": 5000, "cost_usd": 0.0}
    assert recorded["models"] == [] and recorded["archive"] is None
    line = ("Search: offline translator + tuner, 1 generation x 4 candidates, population 4, at most 200 evaluations, "
            "30 min and 5,000 tokens per problem, no archive")
    md = (out / "summary.md").read_text().splitlines()
    assert md[2].startswith("Precision profile: strict") and md[4] == line + "."  # under the precision line
    assert json.loads((out / "summary.json").read_text())["search"] == line
    assert line in (out / "report.html").read_text()


def test_resume_with_other_search_settings_is_refused_naming_each_and_nothing_is_redone(tmp_path: Path,
                                                                                      solved: list[str]) -> None:
    paths = _problems(tmp_path / "kb", "1_a", "2_b")
    out = tmp_path / "out"
    _bench(paths[:1], out, _job(generations=3))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(BenchError) as info:
        _bench(paths, out, _job(generations=1, wall_s=600.0), resume=True)
    text = str(info.value)
    assert text.startswith(f"{out}: this folder's bench was made with other search settings")
    assert "--generations 1 (recorded: 3); --max-minutes 10 (recorded: 30)" in text
    assert "--candidates" not in text.split("flags:")[0]  # only the settings that differ are named
    assert "(flags: --generations 3 --candidates 4 --population 4 --max-candidates 200 --max-minutes 30" in text
    assert "or choose another --out" in text
    assert solved == ["level1/1_a"]  # nothing re-run ...
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # ... written or deleted


def test_resume_with_the_same_search_settings_goes_on(tmp_path: Path, solved: list[str]) -> None:
    paths = _problems(tmp_path / "kb", "1_a", "2_b")
    out = tmp_path / "out"
    _bench(paths[:1], out, _job())
    manifest = json.loads((out / "bench.json").read_text())
    _bench(paths, out, _job(), resume=True)
    assert solved == ["level1/1_a", "level1/2_b"]  # the finished one is not redone
    resumed = json.loads((out / "bench.json").read_text())
    assert resumed == {**manifest, "paths": [str(paths[0]), str(paths[1])]}  # the resume's new path is recorded too
    assert LINE + "." in (out / "summary.md").read_text()


def test_an_old_manifest_without_search_settings_still_summarises_and_resumes(tmp_path: Path,
                                                                             solved: list[str]) -> None:
    paths = _problems(tmp_path / "kb", "1_a", "2_b")
    out = tmp_path / "out"
    ResultStore(out).write(ProblemRow("level1/1_a", "level1", str(paths[0]), "run", "verified", verified=True,
                                      speedup_vs_eager=2.0, gpu="0"))
    old = {"mode": "run", "precision": "strict", "paths": [str(paths[0])], "started": "2025-01-01T00:00:00"}
    (out / "bench.json").write_text(json.dumps(old))
    manifest = BenchManifest.read(out)
    assert manifest is not None and manifest.search is None  # unknown, not a crash
    rebuild_summary(out)
    assert SEARCH_NOT_RECORDED + "." in (out / "summary.md").read_text()
    assert json.loads((out / "summary.json").read_text())["search"] == SEARCH_NOT_RECORDED
    _bench(paths, out, _job(generations=2), resume=True)  # nothing to compare with: it goes on
    assert solved == ["level1/2_b"]
    # not labelled with settings its rows may not have; the resume's new path is recorded
    assert json.loads((out / "bench.json").read_text()) == {**old, "paths": [str(paths[0]), str(paths[1])]}


def test_a_setting_a_manifest_predates_reads_as_what_made_its_rows_not_as_todays_default(tmp_path: Path,
                                                                                     solved: list[str]) -> None:
    """A folder written before offline_fill existed was made without the fill: it reads as off (ABSENT_MEANS), so a
    resume under today's default (on) is refused naming it, and one with it off goes on."""
    paths = _problems(tmp_path / "kb", "1_a", "2_b")
    out = tmp_path / "out"
    _bench(paths[:1], out, _job())
    data = json.loads((out / "bench.json").read_text())
    del data["search"]["run"]["offline_fill"]  # as the folders of sessions 13-16 were written
    (out / "bench.json").write_text(json.dumps(data))
    manifest = BenchManifest.read(out)
    assert manifest is not None and manifest.search is not None and manifest.search.run.offline_fill is False
    assert RunSettings().offline_fill is True
    with pytest.raises(BenchError, match=r"run setting offline_fill True \(recorded: False\)"):
        _bench(paths, out, _job(), resume=True)
    off = RunJob(RunSetup(run_settings=RunSettings(generations=1, offline_fill=False)),
                 RunBudget(candidates=200, wall_s=1800.0))
    _bench(paths, out, off, resume=True)
    assert solved == ["level1/1_a", "level1/2_b"]


@pytest.mark.parametrize("setting", ["offline_graphs", "offline_channels_last_kept"])
def test_a_folder_from_before_a_switch_resumes_with_it_off_and_refuses_it_on(tmp_path: Path, solved: list[str],
                                                                            setting: str) -> None:
    """Every measured folder predates offline_graphs and offline_channels_last_kept: a folder without one reads
    as off, today's default, and a run with it on must go to a folder of its own."""
    paths = _problems(tmp_path / "kb", "1_a", "2_b")
    out = tmp_path / "out"
    _bench(paths[:1], out, _job())
    data = json.loads((out / "bench.json").read_text())
    del data["search"]["run"][setting]
    (out / "bench.json").write_text(json.dumps(data))
    switched = RunJob(RunSetup(run_settings=RunSettings(generations=1, **{setting: True})),
                      RunBudget(candidates=200, wall_s=1800.0))
    with pytest.raises(BenchError, match=rf"run setting {setting} True \(recorded: False\)"):
        _bench(paths, out, switched, resume=True)
    _bench(paths, out, _job(), resume=True)
    assert solved == ["level1/1_a", "level1/2_b"]


def test_the_harness_settings_are_recorded_and_a_resume_under_others_is_refused(tmp_path: Path,
                                                                                solved: list[str]) -> None:
    from kernelwright.tools.harness.evaluate import EvalSettings
    from kernelwright.tools.measure.timing import BenchSettings

    paths = _problems(tmp_path / "kb", "1_a", "2_b")
    out = tmp_path / "out"
    _bench(paths[:1], out, _job())
    recorded = json.loads((out / "bench.json").read_text())["harness"]
    assert recorded["float64_arbiter"] is True and recorded["n_trials"] == 5 and recorded["timing.flush_l2"] is True
    assert "call_timeout_s" not in recorded and "isolation" not in recorded  # where and how long, not what a row says

    def job(settings: EvalSettings) -> RunJob:
        return RunJob(RunSetup(run_settings=RunSettings(generations=1), eval_settings=settings),
                      RunBudget(candidates=200, wall_s=1800.0))

    other = EvalSettings(float64_arbiter=False, bench=BenchSettings(cuda_graph=True), call_timeout_s=5.0)
    with pytest.raises(BenchError) as info:
        _bench(paths, out, job(other), resume=True)
    text = str(info.value)
    assert "judged and timed with other harness settings" in text
    assert "harness setting float64_arbiter False (recorded: True)" in text
    assert "timing setting cuda_graph True (recorded: False)" in text and "call_timeout" not in text
    both = RunJob(RunSetup(run_settings=RunSettings(generations=2), eval_settings=other),
                  RunBudget(candidates=200, wall_s=1800.0))
    with pytest.raises(BenchError) as info:  # every difference of both kinds in one error, not one kind per try
        _bench(paths, out, both, resume=True)
    assert "--generations 2 (recorded: 1)" in str(info.value)
    assert "harness setting float64_arbiter False (recorded: True)" in str(info.value)
    _bench(paths, out, job(EvalSettings(call_timeout_s=5.0)), resume=True)  # a timeout is no difference
    assert solved == ["level1/1_a", "level1/2_b"]
    data = json.loads((out / "bench.json").read_text())
    del data["harness"]  # as every folder before session 17 was written
    (out / "bench.json").write_text(json.dumps(data))
    manifest = BenchManifest.read(out)
    assert manifest is not None and manifest.harness is None
    _bench(_problems(tmp_path / "kb", "3_c"), out, job(other), resume=True)  # unknown: nothing to compare with
    assert solved[-1] == "level1/3_c"


def test_a_difference_is_named_as_the_user_sets_it() -> None:
    recorded = SearchSettings(RunSettings(), RunBudget(), ("gpt-4.1",), None, "/arch")
    asked = replace(recorded, run=replace(recorded.run, crossover_rate=0.5, eval_concurrency=8), models=(),
                    archive=None, budget=RunBudget(cost_usd=2.5))
    texts = [d.text() for d in asked.differences(recorded)]
    # eval_concurrency only decides how many evaluations are in flight: not compared
    assert texts == ["run setting crossover_rate 0.5 (recorded: 0.3)", "--max-cost 2.5 (recorded: 0)",
                     "--model none (offline translator + tuner) (recorded: gpt-4.1)", "--archive none (recorded: /arch)"]


def test_the_settings_line_names_the_models_and_every_limit() -> None:
    plan = ModelPlan((ChosenModel(ModelSettings(model="gpt-4.1")), ChosenModel(ModelSettings(model="o3"))),
                     ChosenModel(ModelSettings(model="o3")))
    settings = SearchSettings.of(RunSettings(generations=2, candidates_per_generation=8, population=6),
                                 RunBudget(candidates=0, wall_s=0.0, tokens=0, cost_usd=3.0), plan, Path("arch"))
    assert settings.describe() == (f"Search: models gpt-4.1, o3 (critic: o3), 2 generations x 8 candidates, "
                                   f"population 6, at most $3 per problem, archive {Path('arch').resolve()}")
    assert SearchSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


def test_redo_measures_named_problems_again_by_key_or_stem_and_keeps_the_others(tmp_path: Path,
                                                                             solved: list[str]) -> None:
    paths = _problems(tmp_path / "kb", "1_a", "2_b", "3_c")
    out = tmp_path / "out"
    _bench(paths, out, _job())
    solved.clear()
    plan = plan_bench(paths, BenchOptions(out, resume=True, redo=("2_b", "level1/3_c", "3_c")), _job(),
                      visible=lambda: ["0"])
    assert plan.again == ("level1/2_b", "level1/3_c")  # a stem and a key; the same problem twice is once
    assert "3 problems (1 finished before, measuring 2 again as asked)" in plan.start_line()
    run_bench(plan)
    assert solved == ["level1/2_b", "level1/3_c"]
    assert {r.key for r in ResultStore(out).rows()} == {"level1/1_a", "level1/2_b", "level1/3_c"}


@pytest.mark.parametrize(("redo", "resume", "says"), [
    (("2_b",), False, "--redo measures problems of the bench in --out again: pass --resume too"),
    (("9_zz",), True, "9_zz: --redo names no problem among the paths given"),
])
def test_redo_without_resume_or_naming_no_problem_is_refused_and_nothing_is_run(
        tmp_path: Path, solved: list[str], redo: tuple[str, ...], resume: bool, says: str) -> None:
    paths = _problems(tmp_path / "kb", "1_a", "2_b")
    out = tmp_path / "out"
    _bench(paths, out, _job())
    solved.clear()
    with pytest.raises(BenchError) as info:
        plan_bench(paths, BenchOptions(out, resume=resume, redo=redo), _job(), visible=lambda: ["0"])
    assert says in str(info.value) and solved == []


def test_redo_of_a_stem_that_two_levels_share_asks_for_the_key(tmp_path: Path, solved: list[str]) -> None:
    root = tmp_path / "kb"
    for level in ("level1", "level2"):
        (root / level).mkdir(parents=True)
        (root / level / "1_a.py").write_text("# a problem the fake solver never reads\n")
    paths = [root / "level1", root / "level2"]
    out = tmp_path / "out"
    _bench(paths, out, _job())
    with pytest.raises(BenchError, match=r"names 2 problems \(level1/1_a, level2/1_a\): name one by its key"):
        plan_bench(paths, BenchOptions(out, resume=True, redo=("1_a",)), _job(), visible=lambda: ["0"])
    assert plan_bench(paths, BenchOptions(out, resume=True, redo=("level2/1_a",)), _job(),
                      visible=lambda: ["0"]).again == ("level2/1_a",)


def _level_problems(root: Path, level: str, *stems: str) -> list[Path]:
    (root / level).mkdir(parents=True, exist_ok=True)
    paths = [root / level / f"{stem}.py" for stem in stems]
    for path in paths:
        path.write_text("# a problem the fake solver never reads\n")
    return paths


def test_several_benches_make_one_table_that_names_each_ones_settings(tmp_path: Path, solved: list[str]) -> None:
    kb = tmp_path / "kb"
    first, second = tmp_path / "l1", tmp_path / "l2"
    _bench(_level_problems(kb, "level1", "1_a", "2_b"), first, _job(generations=1))
    _bench(_level_problems(kb, "level2", "1_c"), second, _job(generations=2))
    out = tmp_path / "all"
    combined = bench.combine_summaries([first, second], out)
    table, files = combined.table, combined.files
    assert [r.key for r in table.rows] == ["level1/1_a", "level1/2_b", "level2/1_c"]
    assert {lv.level for lv in table.levels} >= {"level1", "level2"} and all(f.parent == out for f in files)
    md = (out / "summary.md").read_text()
    assert f"level1 ({first}): {LINE}" in md
    assert f"level2 ({second}): {LINE.replace('1 generation', '2 generations')} (unlike {first}: --generations 2 " \
           "(there 1))" in md
    assert set(json.loads((out / "summary.json").read_text())["benches"]) == {str(first), str(second)}
    assert combined.search in md


def test_a_combined_table_refuses_a_problem_in_two_benches_and_an_out_that_holds_a_bench(tmp_path: Path,
                                                                                        solved: list[str]) -> None:
    kb = tmp_path / "kb"
    first, second = tmp_path / "a", tmp_path / "b"
    paths = _level_problems(kb, "level1", "1_a", "2_b")
    _bench(paths, first, _job())
    _bench(paths[:1], second, _job())
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    with pytest.raises(BenchError, match="level1/1_a has a row in two of the folders"):  # which one counts?
        bench.combine_summaries([first, second], tmp_path / "all")
    third = tmp_path / "c"
    _bench(_level_problems(kb, "level2", "1_c"), third, _job())
    with pytest.raises(BenchError, match="must be a folder of its own"):
        bench.combine_summaries([third, first], first)
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before
    with pytest.raises(BenchError, match="no such results folder"):
        bench.combine_summaries([first, tmp_path / "missing"], tmp_path / "all")
