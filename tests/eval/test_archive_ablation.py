"""The ablation benchmark's bookkeeping: evaluations until a run reaches a target speedup."""

from __future__ import annotations

from kernelwright.eval.bench.ablation_experiment import evaluation_order, evaluations_to_reach
from support.paths import PROBLEMS


def test_counts_evaluations_in_proposal_order_until_the_target() -> None:
    candidates = {
        "a": {"generation": 0, "status": "passed", "speedup_vs_eager": 1.10},
        "b": {"generation": 0, "status": "rejected", "reason": "wrong_output"},
        "c": {"generation": 0, "status": "screened_out"},
        "d": {"generation": 1, "status": "passed", "speedup_vs_eager": 1.49},
        "e": {"generation": 1, "status": "pending"},
        "f": {"generation": 2, "status": "passed", "speedup_vs_eager": 1.52},
    }
    ordered = evaluation_order(candidates)
    assert [r.get("speedup_vs_eager") for r in ordered] == [1.10, None, 1.49, 1.52]
    assert evaluations_to_reach(ordered, 1.52) == 3  # 1.49 is within 2% of 1.52
    assert evaluations_to_reach(ordered, 1.60) is None
    assert evaluations_to_reach(ordered, 1.0) == 1


def test_the_experiment_fills_each_problems_archive_with_the_others_kernels_only(tmp_path) -> None:
    """The leave-one-out bookkeeping with a stand-in for the GPU run: every filled archive holds the other
    problems' verified kernels and none of its own; rows and tables come out."""
    import json
    from pathlib import Path

    from kernelwright.eval.bench.ablation_experiment import ablation
    from kernelwright.memory.embedding import HashedEmbedding
    from kernelwright.tools.harness.results import EvalReport
    from kernelwright.tools.source_hash import candidate_id
    from support.archive import make_record

    seen: dict[str, int] = {}

    def fake_run(problem: Path, tag: str, archive) -> dict:
        seen[f"{problem.stem}-{tag}"] = archive.count()
        run_dir = tmp_path / "runs" / f"{problem.stem}-{tag}"
        source = make_record("softmax", variant=len(seen)).kernel_source
        folder = run_dir / "candidates" / candidate_id(source)[:16]
        folder.mkdir(parents=True)
        (folder / "candidate.py").write_text(source)
        (folder / "meta.json").write_text(json.dumps({"id": candidate_id(source), "agent": "offline", "generation": 0}))
        report = EvalReport(problem=str(problem), candidate="c.py", status="passed", stage="done", speedup_vs_eager=1.5,
                            gpu={"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]})
        (folder / "report.json").write_text(json.dumps(report.to_dict()))
        state = {"functional": {}, "candidates": {"c": {"generation": 0, "status": "passed", "speedup_vs_eager": 1.5}}}
        return {"run_dir": str(run_dir), "state": state, "best": 1.5}

    problems = [tmp_path / f"{name}.py" for name in ("a", "b", "c")]
    summary = ablation(problems, tmp_path / "out", fake_run, HashedEmbedding())
    assert {k: v for k, v in seen.items() if k.endswith("-empty")} == {"a-empty": 0, "b-empty": 0, "c-empty": 0}
    assert {k: v for k, v in seen.items() if k.endswith("-filled")} == {"a-filled": 2, "b-filled": 2, "c-filled": 2}
    assert [r["n_empty"] for r in summary["rows"]] == [1, 1, 1] and summary["problems"] == 3
    assert (tmp_path / "out" / "ablation.md").read_text().count("| 1.50x |") == 6


def test_phases_run_as_separate_processes_share_their_results_on_disk(tmp_path) -> None:
    """One process per GPU: phase 1 of each problem, then phase 2 of each, then the report, each call
    seeing only what the earlier ones left in the output folder."""
    import json
    from pathlib import Path

    from kernelwright.eval.bench.ablation_experiment import first_run, report, second_run
    from kernelwright.memory.embedding import HashedEmbedding

    speeds = {"a-empty": [1.0, 1.4, 1.5], "b-empty": [1.2, 2.0], "a-filled": [1.5], "b-filled": [1.0, 1.1, 1.3]}
    archived: dict[str, int] = {}

    def fake_run(problem: Path, tag: str, archive) -> dict:
        archived[f"{problem.stem}-{tag}"] = archive.count()
        candidates = {f"c{i}": {"generation": i, "status": "passed", "speedup_vs_eager": s}
                      for i, s in enumerate(speeds[f"{problem.stem}-{tag}"])}
        return {"run_dir": str(tmp_path / "runs" / f"{problem.stem}-{tag}"),
                "state": {"functional": {}, "candidates": candidates}, "best": max(speeds[f"{problem.stem}-{tag}"])}

    out, family = tmp_path / "out", ["a", "b"]
    for name in family:
        first_run(tmp_path / f"{name}.py", out, fake_run, HashedEmbedding())
    assert json.loads((out / "first" / "a.json").read_text())["best"] == 1.5
    assert report(out, family)["problems"] == 0  # no second phase yet: no rows, no crash
    for name in family:
        second_run(tmp_path / f"{name}.py", family, out, fake_run, HashedEmbedding())
    summary = report(out, family, {"start": "random"})
    rows = {r["problem"]: r for r in summary["rows"]}
    assert (rows["a"]["n_empty"], rows["a"]["n_filled"]) == (3, 1)
    assert (rows["b"]["n_empty"], rows["b"]["n_filled"]) == (2, None)  # never reached 2.0 with the archive
    assert summary["helped"] == 1 and summary["hurt"] == 1 and summary["conditions"] == {"start": "random"}
    # b never reached its target with the archive: that counts against the median, not out of it
    assert summary["median_n_empty"] == 2.5 and summary["median_n_filled"] is None
    assert "median evaluations to the target: empty 2.5, filled not reached" in (out / "ablation.md").read_text()
    assert archived["a-empty"] == 0 and archived["b-filled"] == 0  # the stand-in runs left no run folders to archive


def test_over_gpus_runs_each_phase_as_one_child_per_gpu_and_waits_between_phases() -> None:
    from kernelwright.eval.bench.archive_ablation import over_gpus

    started: list[tuple[str, str, str]] = []
    waited: list[str] = []

    class Child:
        def __init__(self, phase: str, code: int) -> None:
            self.phase, self.code = phase, code

        def wait(self) -> int:
            waited.append(self.phase)
            return self.code

    def spawn(command: list[str], env: dict[str, str], cores) -> Child:
        phase, only = command[command.index("--phase") + 1], command[command.index("--only") + 1]
        assert "--gpus" not in command and command.count("--out") == 1
        # every child of the first phase is waited for before any of the second starts
        assert phase == "empty" or waited.count("empty") == 2
        assert command[2:4] == ["-m", "kernelwright.eval.bench.archive_ablation"]  # the command itself, once per GPU
        started.append((phase, env["CUDA_VISIBLE_DEVICES"], only))
        return Child(phase, 0)

    argv = ["--out", "/tmp/x", "--gpus", "0,1", "--start", "random"]
    assert over_gpus(argv, ["a", "b", "c"], ["0", "1"], spawn) == 0
    assert started == [("empty", "0", "a,c"), ("empty", "1", "b"), ("filled", "0", "a,c"), ("filled", "1", "b")]

    phases: list[str] = []

    def failing(command: list[str], env: dict[str, str], cores) -> Child:
        phases.append(command[command.index("--phase") + 1])
        return Child(phases[-1], 3 if env["CUDA_VISIBLE_DEVICES"] == "1" else 0)

    assert over_gpus(argv, ["a", "b"], ["0", "1"], failing) == 3
    assert phases == ["empty", "empty"]  # the second phase never starts


def test_every_family_resolves_to_problem_files_and_the_same_width_family_shares_one_kernel_form() -> None:
    """The families the command offers exist; the same-width one is five row normalisations whose single
    row kernel has the same tunables (the point of that family), each plan matching its Model on CPU."""
    from kernelwright.agents.offline.check import check_problem
    from kernelwright.agents.offline.propose import plans_for, trace_all
    from kernelwright.agents.offline.space import plan_space
    from kernelwright.eval.bench.ablation_experiment import SAME_WIDTH_FAMILY, suite_problems
    from kernelwright.eval.bench.archive_ablation import FAMILIES

    for name, family in FAMILIES.items():
        paths = suite_problems(",".join(family))
        assert len(paths) == len(family) >= 4 and all(p.exists() for p in paths), name
    spaces = set()
    for path in suite_problems(",".join(SAME_WIDTH_FAMILY)):
        plan = plans_for(trace_all(path))["fused"][0]
        assert [s.kind for s in plan.steps] == ["reduction"], path.name
        spaces.add(tuple(plan_space(plan).to_dict()))
        assert check_problem(path).passed, path.name
    assert spaces == {("k0.TPR", "k0.RPB", "k0.CACHE", "k0.TWOPASS")}


def test_the_median_counts_a_run_that_never_reached_the_target_as_the_slowest() -> None:
    from kernelwright.eval.bench.ablation_experiment import median_count

    assert median_count([2, 1, None, 1, 1]) == 1
    assert median_count([6, None, None]) is None
    assert median_count([3, 1]) == 2 and median_count([]) is None


def test_the_table_shows_a_missing_figure_as_a_dash_not_zero() -> None:
    from kernelwright.eval.bench.ablation_experiment import markdown

    text = markdown([{"problem": "p", "target_speedup": None, "n_empty": None, "n_filled": None, "best_filled": None},
                     {"problem": "q", "target_speedup": 1.5, "n_empty": 3, "n_filled": 1, "best_filled": 1.52}])
    assert "| p | - | - | - | - |" in text and "| q | 1.50x | 3 | 1 | 1.52x |" in text and "0.00x" not in text


def test_one_ablation_run_is_a_complete_offline_run_recorded_in_its_own_folder(tmp_path, monkeypatch) -> None:
    """eval/bench/archive_ablation wires a run from the graph's parts: the harness evaluator (a CPU stand-in here, given
    the ablation's harness settings), the offline translator and tuner, the archive; the run folder records it."""
    import json
    import zlib
    from pathlib import Path

    from kernelwright.agents.context import RunSettings
    from kernelwright.agents.evaluator import EvaluatorDefaults
    from kernelwright.eval.bench.archive_ablation import ablation_harness, offline_run
    from kernelwright.graphs import harness_evaluator
    from kernelwright.memory.archive import KernelArchive
    from kernelwright.memory.embedding import HashedEmbedding
    from kernelwright.tools.harness.evaluate import EvalSettings
    from support.graph_fakes import fake_report, verdict

    made: list[tuple[Path, bool]] = []

    class CpuHarness(EvaluatorDefaults):
        def __init__(self, problem: Path, settings: EvalSettings) -> None:
            made.append((problem, settings.compile_baseline))
            self.closed = False

        def evaluate(self, candidate):
            speed = 1.0 + (zlib.crc32(Path(candidate).read_bytes()) % 1000) / 1000
            return fake_report(candidate, "passed", speedup_vs_eager=speed)

        def sanitize(self, candidate):
            return verdict("clean")

    monkeypatch.setattr(harness_evaluator, "HarnessEvaluator", CpuHarness)
    problem = PROBLEMS / "softmax_rows.py"
    settings = RunSettings(generations=2, candidates_per_generation=2, profile=False)
    with KernelArchive.open_local(tmp_path / "archive", embedding=HashedEmbedding()) as archive:
        done = offline_run(problem, tmp_path / "runs" / "softmax_rows-empty", settings, archive, ablation_harness())
        archived = archive.count()
    state = done["state"]
    speeds = [r["speedup_vs_eager"] for r in state["candidates"].values() if r["status"] == "passed"]
    assert made == [(problem, False)]  # torch.compile's baseline only with --compile-baseline
    assert state["generation"] == 2 and len(speeds) >= 3 and done["best"] == max(speeds)
    assert {r["agent"] for r in state["candidates"].values()} == {"offline"} and archived == len(speeds)
    run_dir = Path(done["run_dir"])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_end" and sum(e["event"] == "tool_call" and e["tool"] == "evaluate"
                                                    for e in events) == len(state["candidates"])


def test_the_ablation_harness_is_the_owners_defaults_but_for_the_compile_baseline() -> None:
    from dataclasses import replace

    from kernelwright.eval.bench.archive_ablation import ablation_harness
    from kernelwright.tools.harness.evaluate import EvalSettings

    assert ablation_harness() == replace(EvalSettings(), compile_baseline=False)
    assert ablation_harness(compile_baseline=True) == EvalSettings()  # the owner's default times torch.compile


def test_the_command_runs_as_a_module_of_eval() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-P", "-m", "kernelwright.eval.bench.archive_ablation", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--compile-baseline" in done.stdout and "--gpus" in done.stdout
