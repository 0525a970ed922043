"""The scaling benchmark (eval.bench.scaling): rates, speedup and efficiency per GPU count, lanes per GPU (planned
for the local bench only, their speedup over 1 lane, their verdicts checked), the verdict check across GPU counts
(a disagreement found, a difference within the noise band accepted), the commands each configuration runs, resume
(also of an --out from before lanes), the typed errors (more GPUs than visible, no such problem, no ray), and a
translate-only smoke run over two problems of the dev split's level 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kernelwright.eval.bench import scaling
from kernelwright.eval.bench.scaling import (
    EXIT_BAD_INPUT,
    EXIT_DISAGREE,
    EXIT_FAILED,
    EXIT_OK,
    ScalingError,
    ScalingOptions,
    plan_scaling,
    run_scaling,
)
from kernelwright.eval.bench.scaling_table import (
    ConfigResult,
    Verdict,
    compare_verdicts,
    markdown,
    scaling_lines,
    within_noise,
)
from kernelwright.eval.kernelbench.problems import find_problems
from kernelwright.eval.kernelbench.rows import ProblemRow, ResultStore
from kernelwright.tools.run_folder import CandidateMeta, RunFolder
from support.paths import KERNELBENCH

LEVEL2 = ("12_Gemm_Multiply_LeakyReLU", "14_Gemm_Divide_Sum_Scaling")


def _bench(executor: str, gpus: int, wall_s: float, verdicts: dict[str, Verdict], lanes: int = 1) -> ConfigResult:
    return ConfigResult("bench", executor, gpus, wall_s, len(verdicts), ("NVIDIA H100",), verdicts, lanes=lanes)


def _verdicts(n: int, speedup: float = 1.5) -> dict[str, Verdict]:
    return {f"level2/{i}_p": Verdict("verified", speedup) for i in range(n)}


def test_rates_speedups_and_efficiency_over_one_gpu() -> None:
    results = [_bench("local", 1, 120.0, _verdicts(10)), _bench("local", 2, 75.0, _verdicts(10)),
               _bench("local", 4, 50.0, _verdicts(10))]
    lines = {line.gpus: line for line in scaling_lines(results)}
    assert lines[1].rate_per_min == pytest.approx(5.0)  # 10 problems in 2 minutes
    assert lines[2].rate_per_min == pytest.approx(8.0) and lines[2].speedup == pytest.approx(1.6)
    assert lines[2].efficiency == pytest.approx(0.8)  # 8 / (2 * 5)
    assert lines[4].speedup == pytest.approx(2.4) and lines[4].efficiency == pytest.approx(0.6)
    assert lines[1].speedup == pytest.approx(1.0) and lines[1].unit == "problems"


def test_each_executor_is_its_own_base_and_a_missing_one_gpu_run_uses_the_smallest_count() -> None:
    results = [_bench("local", 1, 60.0, _verdicts(4)), _bench("ray", 2, 60.0, _verdicts(4)),
               _bench("ray", 4, 40.0, _verdicts(4))]
    ray4 = next(line for line in scaling_lines(results) if (line.executor, line.gpus) == ("ray", 4))
    assert ray4.base_gpus == 2 and ray4.speedup == pytest.approx(1.5) and ray4.efficiency == pytest.approx(0.75)
    assert "(over 2)" in markdown(results, 0.1)


def test_within_noise_accepts_a_small_difference_and_refuses_a_large_one() -> None:
    assert within_noise(1.58, 1.50, 0.10) and within_noise(None, None, 0.1)
    assert not within_noise(1.70, 1.50, 0.10) and not within_noise(1.5, None, 0.1)


def test_verdict_check_lists_every_disagreement_and_accepts_noise() -> None:
    ref = _verdicts(4)
    same_within_noise = {**ref, "level2/0_p": Verdict("verified", 1.6)}  # 6.7% off: within 10%
    other = {**ref, "level2/1_p": Verdict("not_verified", None), "level2/2_p": Verdict("verified", 2.0)}
    del other["level2/3_p"]
    results = [_bench("local", 1, 60.0, ref), _bench("local", 2, 40.0, same_within_noise),
               _bench("local", 4, 30.0, other)]
    found = compare_verdicts(results, 0.10)
    assert {(d.item, d.what, d.config) for d in found} == {
        ("level2/1_p", "status", "bench-local-4gpu"), ("level2/2_p", "speedup", "bench-local-4gpu"),
        ("level2/3_p", "missing", "bench-local-4gpu")}
    assert compare_verdicts(results[:2], 0.10) == []
    assert compare_verdicts(results[:2], 0.05)[0].what == "speedup"  # a tighter band sees the 6.7%
    text = markdown(results, 0.10)
    assert "3 disagreement(s)" in text and "level2/1_p: bench-local-4gpu vs bench-local-1gpu: not_verified vs verified" \
        in text


def test_agent_runs_compare_only_the_candidates_both_evaluated() -> None:
    ref = {"aaaa": Verdict("passed", 1.2), "bbbb": Verdict("rejected")}
    other = {"aaaa": Verdict("passed", 1.25), "cccc": Verdict("passed", 3.0)}  # the search went elsewhere: no verdict
    results = [ConfigResult("agent_run", "ray", 1, 60.0, 2, (), ref), ConfigResult("agent_run", "ray", 2, 40.0, 2, (), other)]
    assert compare_verdicts(results, 0.1) == []
    assert [line.unit for line in scaling_lines(results)] == ["candidates", "candidates"]
    assert compare_verdicts([results[0], ConfigResult("agent_run", "ray", 2, 40.0, 1, (), {"aaaa": Verdict("rejected")})],
                            0.1)[0].what == "status"


def test_an_attempt_that_finished_nothing_before_failing_does_not_count_as_wall_time() -> None:
    attempts = [{"seconds": 30.0, "items_before": 0, "items_after": 0},  # the cluster did not answer
                {"seconds": 50.0, "items_before": 0, "items_after": 3},  # stopped after three problems
                {"seconds": 20.0, "items_before": 3, "items_after": 4}]
    assert scaling.working_seconds(attempts) == pytest.approx(70.0)
    assert scaling.working_seconds(attempts[:1]) == pytest.approx(30.0)  # the last attempt always counts


def test_default_gpu_counts_are_one_and_the_powers_of_two_visible() -> None:
    assert scaling.default_gpu_counts(0) == (1,) and scaling.default_gpu_counts(3) == (1, 2)
    assert scaling.default_gpu_counts(8) == (1, 2, 4, 8)
    assert scaling.parse_counts("4,1,2,2") == (1, 2, 4)
    with pytest.raises(ScalingError, match="--gpu-counts"):
        scaling.parse_counts("1,two")


def _problem_dir(root: Path, n: int = 2) -> Path:
    folder = root / "level2"
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        (folder / f"{i}_p.py").write_text("# read only by the fake launcher's rows\n")
    return folder


def test_more_gpus_than_visible_is_a_typed_error_naming_what_is_visible(tmp_path: Path) -> None:
    options = ScalingOptions((str(_problem_dir(tmp_path)),), tmp_path / "out", gpu_counts=(1, 2))
    with pytest.raises(ScalingError, match=r"2 GPUs asked, 1 visible here \(0: CUDA_VISIBLE_DEVICES"):
        plan_scaling(options, visible=lambda: ["0"])
    with pytest.raises(ScalingError, match="1 GPU asked, 0 visible here"):
        plan_scaling(ScalingOptions(options.paths, options.out, gpu_counts=(1,)), visible=lambda: [])
    assert not options.out.exists()  # nothing written


def test_the_command_reports_errors_without_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, whatever this machine has
    problems = str(_problem_dir(tmp_path))
    assert scaling.main([problems, "--gpu-counts", "2", "--out", str(tmp_path / "o")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("Error: --gpu-counts: 2 GPUs asked, 0 visible here (none") and "Traceback" not in err
    assert scaling.main([str(tmp_path / "nowhere"), "--translate-only"]) == EXIT_BAD_INPUT
    assert "no such problem file or folder" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    assert scaling.main([str(tmp_path / "notes.txt"), "--translate-only"]) == EXIT_BAD_INPUT
    assert "a problem must be a Python file" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError: not installed
    assert scaling.main([problems, "--translate-only", "--executors", "local,ray", "--out",
                         str(tmp_path / "o")]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "needs the ray package" in err and "pip install 'kernelwright[ray]'" in err and "Traceback" not in err


def test_commands_pass_the_gpus_the_executor_and_the_bench_options(tmp_path: Path) -> None:
    options = ScalingOptions((str(_problem_dir(tmp_path)),), tmp_path / "out", gpu_counts=(2,),
                             executors=("local",), workloads=("bench", "agent_run"), generations=1, population=16)
    plan = plan_scaling(options, visible=lambda: ["3", "5", "7"])
    bench, agent = plan.configs
    command = scaling.bench_command(plan, bench, tmp_path / "b", None)
    assert command[1:4] == ["-P", "-m", "kernelwright.cli"] and command[4] == "bench"
    assert command[command.index("--gpus") + 1] == "3,5"  # the first two visible GPUs, as CUDA names them
    assert command[command.index("--generations") + 1] == "1" and "--resume" in command
    run = scaling.agent_command(plan, agent, tmp_path / "a", "127.0.0.1:6379", "replay@http://127.0.0.1:1/v1")
    assert run[4:6] == ["run", str(plan.problems[0].path)]
    assert [run[run.index(f) + 1] for f in ("--population", "--candidates", "--model")] == [
        "16", "16", "replay@http://127.0.0.1:1/v1"]
    assert "--address" not in run  # the local executor joins no cluster


def test_a_replay_script_that_is_none_is_refused_before_anything_runs(tmp_path: Path) -> None:
    script = tmp_path / "answers.json"
    script.write_text('[{"reply": "no such field"}]')
    options = ScalingOptions((str(_problem_dir(tmp_path)),), tmp_path / "out", gpu_counts=(1,),
                             workloads=("agent_run",), replay=script)
    with pytest.raises(ScalingError, match="not a replay script"):
        plan_scaling(options, visible=lambda: ["0"])
    script.write_text('[{"answer": "```python\\nclass ModelNew: ...\\n```", "repeat": true}]')
    assert plan_scaling(options, visible=lambda: ["0"]).agent_problem == find_problems(options.paths)[0].path


def test_an_agent_runs_items_are_the_candidates_with_a_report(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "cfg" / "runs" / "r1")
    reports = {"kernel_a = 1\n": {"status": "passed", "speedup_vs_eager": 1.4, "gpu": {"name": "NVIDIA H100"}},
               "kernel_b = 2\n": {"status": "rejected", "reason": "mismatch"}, "kernel_c = 3\n": None}  # c: pending
    ids = {}
    for source, report in reports.items():
        cid, folder = run.store_candidate(source, CandidateMeta(agent="offline"))
        ids[source] = folder.path.name
        if report is not None:
            folder.write_report(report)
    spec = scaling.ConfigSpec("agent_run", "local", 2, ("0", "1"))
    result = scaling.agent_result(spec, tmp_path / "cfg", 30.0, 1)
    assert result.items == 2 and result.rate_per_min == pytest.approx(4.0) and result.cards == ("NVIDIA H100",)
    assert result.verdicts == {ids["kernel_a = 1\n"]: Verdict("passed", 1.4), ids["kernel_b = 2\n"]: Verdict("rejected")}


class FakeLaunch:
    """Stands in for `kernelwright bench`: writes the rows its script says for the GPU count in the command ("2"),
    or for the GPU count and its lanes ("1x2") where the command has --lanes-per-gpu."""

    def __init__(self, rows_by_gpus: dict[str, list[tuple[str, str, float | None]]],
                 exit_status: dict[str, int] | None = None):
        self.rows_by_gpus = rows_by_gpus
        self.exit_status = exit_status or {}
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], env: dict[str, str], log: Path) -> int:
        self.commands.append(command)
        out = Path(command[command.index("--out") + 1])
        gpus = str(len(command[command.index("--gpus") + 1].split(",")))
        if "--lanes-per-gpu" in command:
            gpus += "x" + command[command.index("--lanes-per-gpu") + 1]
        for key, status, speedup in self.rows_by_gpus[gpus]:
            level, stem = key.split("/")
            ResultStore(out).write(ProblemRow(key, level, f"{stem}.py", "run", status,  # type: ignore[arg-type]
                                              verified=status == "verified", speedup_vs_eager=speedup,
                                              gpu_name="NVIDIA H100"))
        return self.exit_status.get(gpus, 0)


def test_a_disagreement_across_gpu_counts_exits_1_and_is_listed(tmp_path: Path) -> None:
    options = ScalingOptions((str(_problem_dir(tmp_path)),), tmp_path / "out", gpu_counts=(1, 2))
    plan = plan_scaling(options, visible=lambda: ["0", "1"])
    launch = FakeLaunch({"1": [("level2/1_p", "verified", 1.5), ("level2/2_p", "verified", 2.0)],
                         "2": [("level2/1_p", "verified", 1.45), ("level2/2_p", "not_verified", None)]})
    outcome = run_scaling(plan, launch, say=lambda line: None)
    assert outcome.exit_code == EXIT_DISAGREE and len(launch.commands) == 2
    data = json.loads((options.out / "scaling.json").read_text())
    assert [d["item"] for d in data["verdicts"]["disagreements"]] == ["level2/2_p"]  # 1_p: 3% off, within 10%
    assert data["verdicts"]["compared"] == {"bench": 2} and data["lines"][0]["cards"] == ["NVIDIA H100"]
    assert "level2/2_p: bench-local-2gpu vs bench-local-1gpu: not_verified vs verified" in \
        (options.out / "scaling.md").read_text()


def test_resume_skips_a_finished_configuration_and_continues_an_unfinished_one(tmp_path: Path) -> None:
    problems = (str(_problem_dir(tmp_path)),)
    options = ScalingOptions(problems, tmp_path / "out", gpu_counts=(1, 2))
    first = FakeLaunch({"1": [("level2/1_p", "verified", 1.5), ("level2/2_p", "verified", 2.0)],
                        "2": [("level2/1_p", "verified", 1.5)]}, {"2": 4})  # the 2-GPU bench stops after one problem
    outcome = run_scaling(plan_scaling(options, visible=lambda: ["0", "1"]), first, say=lambda line: None)
    assert outcome.exit_code == EXIT_FAILED and outcome.pending == ["bench-local-2gpu"]
    assert "bench-local-2gpu: its command exited with status 4" in outcome.failed[0]
    assert "Not finished (run again with --resume): bench-local-2gpu" in (options.out / "scaling.md").read_text()
    with pytest.raises(ScalingError, match="pass --resume"):
        plan_scaling(options, visible=lambda: ["0", "1"])
    second = FakeLaunch({"2": [("level2/2_p", "verified", 2.0)]})
    resumed = ScalingOptions(problems, options.out, gpu_counts=(1, 2), resume=True)
    outcome = run_scaling(plan_scaling(resumed, visible=lambda: ["0", "1"]), second, say=lambda line: None)
    assert outcome.exit_code == EXIT_OK and len(second.commands) == 1  # the 1-GPU bench was not redone
    two = next(r for r in outcome.results if r.gpus == 2)
    attempts = json.loads((options.out / "bench-local-2gpu" / "attempts.json").read_text())
    assert two.attempts == 2 and two.items == 2 and two.wall_s == pytest.approx(sum(a["seconds"] for a in attempts))
    (tmp_path / "level2" / "3_p.py").write_text("# a problem added since\n")
    third = FakeLaunch({"1": [("level2/3_p", "verified", 1.1)], "2": [("level2/3_p", "verified", 1.1)]})
    outcome = run_scaling(plan_scaling(resumed, visible=lambda: ["0", "1"]), third, say=lambda line: None)
    assert len(third.commands) == 2 and {r.items for r in outcome.results} == {3}  # both benches resumed to add it


@pytest.mark.nvcc
@pytest.mark.skipif(not all((KERNELBENCH / "level2" / f"{p}.py").is_file() for p in LEVEL2),
                    reason="the KernelBench dev split is not beside this checkout")
def test_translate_only_smoke_run_over_two_level2_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """On a machine without a GPU the bench's translate-only runs on CPU lanes: the GPU count changes no work,
    and the table says so rather than claiming a GPU."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KERNELWRIGHT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    out = tmp_path / "scaling"
    args = [*(str(KERNELBENCH / "level2" / f"{p}.py") for p in LEVEL2), "--translate-only", "--gpu-counts", "1",
            "--executors", "local", "--out", str(out)]
    assert scaling.main(args) == EXIT_OK, capsys.readouterr()
    data = json.loads((out / "scaling.json").read_text())
    (line,) = data["lines"]
    assert (line["workload"], line["executor"], line["gpus"], line["items"]) == ("bench", "local", 1, 2)
    assert line["rate_per_min"] > 0 and "the GPU count changes no work" in line["note"]
    assert data["verdicts"] == {"agree": True, "compared": {"bench": 2}, "disagreements": []}
    assert {r.status for r in ResultStore(out / "bench-local-1gpu").rows()} <= {"compiled", "not_compiled", "no_candidate"}
    assert "| bench | local | 1 |" in (out / "scaling.md").read_text()
    capsys.readouterr()
    assert scaling.main([*args, "--resume"]) == EXIT_OK  # finished: not redone
    assert "bench-local-1gpu: finished before (2 items" in capsys.readouterr().out
    assert len(json.loads((out / "bench-local-1gpu" / "attempts.json").read_text())) == 1


@pytest.mark.nvcc
@pytest.mark.skipif(not all((KERNELBENCH / "level2" / f"{p}.py").is_file() for p in LEVEL2),
                    reason="the KernelBench dev split is not beside this checkout")
def test_translate_only_on_a_local_ray_cluster_agrees_with_the_local_executor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Ray started here per GPU count (none on this machine: its CPUs translate), the bench joining it by address;
    its verdicts are checked against the local executor's."""
    pytest.importorskip("ray")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KERNELWRIGHT_MODEL", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    out = tmp_path / "scaling"
    args = [*(str(KERNELBENCH / "level2" / f"{p}.py") for p in LEVEL2), "--translate-only", "--gpu-counts", "1",
            "--executors", "local,ray", "--out", str(out)]
    assert scaling.main(args) == EXIT_OK, capsys.readouterr()
    data = json.loads((out / "scaling.json").read_text())
    ray_line = next(line for line in data["lines"] if line["executor"] == "ray")
    assert ray_line["items"] == 2 and "the Ray cluster's CPUs" in ray_line["note"]
    assert data["verdicts"]["agree"] and data["verdicts"]["compared"] == {"bench": 2}
    assert "--executor ray --address" in next(c["command"] for c in data["configs"] if c["executor"] == "ray")


# --- lanes per GPU ------------------------------------------------------------------------------------------------

def test_lanes_are_planned_for_the_local_bench_only_and_their_commands_ask_for_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaling, "check_executor", lambda settings: None)  # ray or not, on this machine
    options = ScalingOptions((str(_problem_dir(tmp_path)),), tmp_path / "out", gpu_counts=(1, 2), lanes_per_gpu=(1, 2),
                             executors=("local", "ray"), workloads=("bench", "agent_run"))
    plan = plan_scaling(options, visible=lambda: ["0", "1"])
    assert [s.name for s in plan.configs] == [
        "bench-local-1gpu", "bench-local-1gpu-2lanes", "bench-local-2gpu", "bench-local-2gpu-2lanes",
        "bench-ray-1gpu", "bench-ray-2gpu",
        "agent-run-local-1gpu", "agent-run-local-2gpu", "agent-run-ray-1gpu", "agent-run-ray-2gpu"]
    by_name = {s.name: s for s in plan.configs}
    two_lanes = scaling.bench_command(plan, by_name["bench-local-2gpu-2lanes"], tmp_path / "b", None)
    assert two_lanes[two_lanes.index("--lanes-per-gpu") + 1] == "2" and two_lanes[two_lanes.index("--gpus") + 1] == "0,1"
    assert "GPU gate" in by_name["bench-local-1gpu-2lanes"].note
    assert "--lanes-per-gpu" not in scaling.bench_command(plan, by_name["bench-local-1gpu"], tmp_path / "b", None)
    assert "--lanes-per-gpu" not in scaling.bench_command(plan, by_name["bench-ray-1gpu"], tmp_path / "b", "1.2.3.4:6379")


def test_lanes_per_gpu_is_parsed_like_gpu_counts_and_refused_where_nothing_uses_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = str(_problem_dir(tmp_path))
    assert scaling.parse_options([problems]).lanes_per_gpu == (1,)
    assert scaling.parse_options([problems, "--lanes-per-gpu", "3,1,2"]).lanes_per_gpu == (1, 2, 3)
    with pytest.raises(ScalingError, match="--lanes-per-gpu: '0,2' is no list of lanes per GPU"):
        scaling.parse_options([problems, "--lanes-per-gpu", "0,2"])
    out = str(tmp_path / "o")
    assert scaling.main([problems, "--translate-only", "--lanes-per-gpu", "1,2", "--out", out]) == EXIT_BAD_INPUT
    assert "CPU lanes (--jobs)" in capsys.readouterr().err
    assert scaling.main([problems, "--gpu-counts", "1", "--executors", "ray", "--lanes-per-gpu", "2",
                         "--out", out]) == EXIT_BAD_INPUT
    assert "bench with the local executor only" in capsys.readouterr().err
    assert not Path(out).exists()


def test_a_lane_line_shows_its_speedup_over_one_lane_and_no_gpu_efficiency() -> None:
    results = [_bench("local", 1, 120.0, _verdicts(10)), _bench("local", 1, 80.0, _verdicts(10), lanes=2),
               _bench("local", 1, 75.0, _verdicts(10), lanes=3), _bench("local", 2, 75.0, _verdicts(10)),
               _bench("local", 2, 50.0, _verdicts(10), lanes=2)]
    lines = {(line.gpus, line.lanes): line for line in scaling_lines(results)}
    assert list(lines) == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    assert lines[1, 2].lane_speedup == pytest.approx(1.5) and lines[1, 2].speedup == pytest.approx(1.5)
    assert lines[1, 2].efficiency is None and lines[1, 3].lane_speedup == pytest.approx(1.6)
    assert lines[2, 1].efficiency == pytest.approx(0.8) and lines[2, 1].lane_speedup is None  # GPU scaling as before
    assert lines[2, 2].lane_speedup == pytest.approx(1.5) and lines[2, 2].speedup == pytest.approx(2.4)  # over 2 GPU x 1
    text = markdown(results, 0.1)
    assert "| bench | local | 1 | 2 | 80.0 | 10 problems | 7.50 | 1.50x | - | 1.50x |" in text
    assert "| bench | local | 2 | 1 | 75.0 | 10 problems | 8.00 | 1.60x | 80% | - |" in text
    only_lanes = scaling_lines([_bench("local", 1, 60.0, _verdicts(4), lanes=2),
                                _bench("local", 1, 40.0, _verdicts(4), lanes=3)])  # no 1-lane run: the fewest lanes
    assert only_lanes[1].speedup == pytest.approx(1.5) and only_lanes[1].lane_speedup is None
    assert "(over 1 GPU x 2 lanes)" in markdown([_bench("local", 1, 60.0, _verdicts(4), lanes=2)], 0.1)


def test_a_lane_configuration_whose_verdicts_differ_exits_1_against_one_lane(tmp_path: Path) -> None:
    options = ScalingOptions((str(_problem_dir(tmp_path)),), tmp_path / "out", gpu_counts=(1,), lanes_per_gpu=(1, 2, 3))
    plan = plan_scaling(options, visible=lambda: ["0"])
    launch = FakeLaunch({"1": [("level2/1_p", "verified", 1.5), ("level2/2_p", "verified", 2.0)],
                         "1x2": [("level2/1_p", "verified", 1.55), ("level2/2_p", "verified", 2.05)],  # within noise
                         "1x3": [("level2/1_p", "verified", 1.1), ("level2/2_p", "not_verified", None)]})
    outcome = run_scaling(plan, launch, say=lambda line: None)
    assert outcome.exit_code == EXIT_DISAGREE and len(launch.commands) == 3
    data = json.loads((options.out / "scaling.json").read_text())
    assert {(d["item"], d["what"], d["config"], d["reference"]) for d in data["verdicts"]["disagreements"]} == {
        ("level2/1_p", "speedup", "bench-local-1gpu-3lanes", "bench-local-1gpu"),  # timings disturbed: 27% off
        ("level2/2_p", "status", "bench-local-1gpu-3lanes", "bench-local-1gpu")}
    assert [line["lanes"] for line in data["lines"]] == [1, 2, 3]
    assert sorted(d.name for d in options.out.iterdir() if d.is_dir()) == [
        "bench-local-1gpu", "bench-local-1gpu-2lanes", "bench-local-1gpu-3lanes"]
    assert json.loads((options.out / "bench-local-1gpu-2lanes" / "result.json").read_text())["lanes"] == 2


def test_an_out_from_before_lanes_resumes_and_only_the_lane_configurations_run(tmp_path: Path) -> None:
    problems = (str(_problem_dir(tmp_path)),)
    out = tmp_path / "out"
    first = FakeLaunch({"1": [("level2/1_p", "verified", 1.5), ("level2/2_p", "verified", 2.0)]})
    run_scaling(plan_scaling(ScalingOptions(problems, out, gpu_counts=(1,)), visible=lambda: ["0"]), first,
                say=lambda line: None)
    result_file = out / "bench-local-1gpu" / "result.json"
    old = json.loads(result_file.read_text())
    del old["lanes"]  # as an earlier session wrote it
    result_file.write_text(json.dumps(old))
    resumed = ScalingOptions(problems, out, gpu_counts=(1,), lanes_per_gpu=(1, 2), resume=True)
    second = FakeLaunch({"1x2": [("level2/1_p", "verified", 1.5), ("level2/2_p", "verified", 2.0)]})
    said: list[str] = []
    outcome = run_scaling(plan_scaling(resumed, visible=lambda: ["0"]), second, say=said.append)
    assert outcome.exit_code == EXIT_OK and len(second.commands) == 1 and "--lanes-per-gpu" in second.commands[0]
    assert said[0].startswith("bench-local-1gpu: finished before (2 items")
    assert sorted((r.name, r.lanes) for r in outcome.results) == [("bench-local-1gpu", 1), ("bench-local-1gpu-2lanes", 2)]
