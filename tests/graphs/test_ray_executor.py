"""The Ray executor on a real local Ray cluster (no GPU: Ray is told of two, so GPU actors schedule): builds run as
Ray CPU tasks through nvcc, evaluations fan out over GPU actors that each keep their evaluator, an actor killed
mid-run is replaced and every candidate is still evaluated exactly once, reports say where they were measured, and
`kernelwright bench --executor ray --translate-only` spreads a dev-split level's problems over the cluster."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import ray
import ray.cloudpickle
from typer.testing import CliRunner

import support.ray_fakes
from kernelwright.agents.context import RunSettings
from kernelwright.cli import app
from kernelwright.cli_errors import EXIT_PASSED
from kernelwright.eval.kernelbench.rows import ResultStore
from kernelwright.graphs.executors import ExecutorSettings
from kernelwright.graphs.ray_executor import RayEvaluator, RayExecutorError
from kernelwright.run import optimize
from kernelwright.tools.compile.nvcc import BuildSettings
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.run_folder import CandidateFolder, RunFolder
from support.candidate_variants import candidate_variants
from support.graph_fakes import answer, scripted
from support.paths import FIXTURES as FIX
from support.paths import KERNELBENCH
from support.ray_fakes import counting_factory, failing_factory

PROBLEM = FIX / "problems" / "relu_affine.py"
CLUSTER_GPUS = 2
LEVEL2 = ("10_ConvTranspose2d_MaxPool_Hardtanh_Mean_Tanh", "12_Gemm_Multiply_LeakyReLU", "14_Gemm_Divide_Sum_Scaling")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local Ray cluster for the module: 2 CPUs, and 2 'GPUs' Ray believes in (actors with num_gpus=1)."""
    ray.cloudpickle.register_pickle_by_value(support.ray_fakes)  # the workers cannot import tests/support
    ray.init(num_cpus=2, num_gpus=CLUSTER_GPUS, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _evaluator(tmp_path: Path, delay_s: float, build_cache: Path | None = None) -> tuple[RayEvaluator, Path]:
    markers = tmp_path / "markers"
    markers.mkdir()
    settings = EvalSettings(build=BuildSettings(arch="sm_90a", cache_dir=build_cache))
    return RayEvaluator(PROBLEM, settings, ExecutorSettings("ray"), factory=counting_factory(markers, delay_s)), markers


def _finished(markers: Path) -> Counter[str]:
    """How often each candidate was evaluated to the end (the fake leaves one marker per finished evaluation)."""
    return Counter(p.name.split(".")[0] for p in markers.glob("*.done"))


def _in_progress(markers: Path) -> tuple[str, int] | None:
    """A candidate being evaluated now and the pid of the actor evaluating it (started, not finished)."""
    done = _finished(markers)
    for started in markers.glob("*.started"):
        candidate, pid, _ = started.name.split(".")
        if candidate not in done:
            return candidate, int(pid)
    return None


def test_evaluations_fan_out_over_gpu_actors_that_record_where_they_measured(cluster: None, tmp_path: Path) -> None:
    evaluator, markers = _evaluator(tmp_path, delay_s=0.3)
    try:
        assert evaluator.gpus == ("0", "1") and len(evaluator.actors) == CLUSTER_GPUS
        candidates = candidate_variants(tmp_path, 6)
        with ThreadPoolExecutor(6) as pool:  # as the graph's fan-out calls it
            reports = list(pool.map(evaluator.evaluate, candidates))
        assert [r.status for r in reports] == ["passed"] * 6
        assert [r.candidate for r in reports] == [str(c) for c in candidates]  # the driver's paths, not the actor's
        assert {r.gpu["cuda_visible_devices"] for r in reports} == {"0", "1"}  # both GPUs worked
        assert all(r.gpu["node"] and r.gpu["ray_node_id"] for r in reports)
        # the process that made the evaluator (and measured its baselines) is the one that timed the candidate
        assert all(r.gpu["baseline_pid"] == r.gpu["eval_pid"] for r in reports)
        assert _finished(markers) == {f"g0-c{i}": 1 for i in range(6)}
        assert evaluator.evaluate(candidates[0]) is reports[0]  # asked again: the recorded report, not a new run
        assert _finished(markers)["g0-c0"] == 1
    finally:
        evaluator.close()


def test_an_actor_killed_mid_run_is_replaced_and_every_candidate_is_evaluated_once(cluster: None,
                                                                                    tmp_path: Path) -> None:
    evaluator, markers = _evaluator(tmp_path, delay_s=0.5)
    try:
        candidates = candidate_variants(tmp_path, 8)
        by_pid = {ray.get(a.identity.remote())["pid"]: a for a in evaluator.actors}
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(evaluator.evaluate, c) for c in candidates]
            deadline = time.monotonic() + 60
            while (running := _in_progress(markers)) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert running is not None, "no evaluation started"
            victim = by_pid[running[1]]
            ray.kill(victim, no_restart=True)  # mid-evaluation: it sleeps 0.5 s before finishing
            reports = [f.result(timeout=120) for f in futures]
        assert [r.status for r in reports] == ["passed"] * 8
        assert _finished(markers) == {f"g0-c{i}": 1 for i in range(8)}  # none lost, none counted twice
        assert sum(evaluator.attempts.values()) > 8  # the killed actor's candidate was tried again
        assert victim not in evaluator.actors and len(evaluator.actors) == CLUSTER_GPUS
    finally:
        evaluator.close()


@pytest.mark.nvcc
def test_builds_run_as_ray_cpu_tasks_with_nvcc(cluster: None, tmp_path: Path, build_cache: Path) -> None:
    evaluator, _ = _evaluator(tmp_path, delay_s=0.0, build_cache=build_cache)
    try:
        (good,) = candidate_variants(tmp_path, 1)
        bad = tmp_path / "candidates" / "g0-bad" / "candidate.py"
        bad.parent.mkdir(parents=True)
        shutil.copy(FIX / "broken" / "candidate_compile_error.py", bad)
        with ThreadPoolExecutor(2) as pool:
            built, failed = pool.map(evaluator.prepare, [good, bad])
        assert built is None  # built: nothing to report
        assert failed is not None and failed.status == "rejected" and failed.reason == "compile_error"
        assert failed.stage == "build" and failed.error["diagnostics"][0]["line"] == 4
        assert failed.candidate == str(bad) and failed.gpu["node"]  # where the build ran
    finally:
        evaluator.close()


@pytest.mark.nvcc
@pytest.mark.slow
@pytest.mark.skipif(not KERNELBENCH.is_dir(), reason="the KernelBench dev split is not beside this checkout")
def test_bench_translate_only_spreads_problems_over_the_cluster(cluster: None, tmp_path: Path) -> None:
    level = tmp_path / "level2"
    level.mkdir()
    for name in LEVEL2:
        shutil.copy(KERNELBENCH / "level2" / f"{name}.py", level)
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", str(level), "--executor", "ray", "--translate-only", "--out", str(out)],
                                env={"CUDA_VISIBLE_DEVICES": "", "KERNELWRIGHT_MODEL": ""})
    assert result.exit_code == EXIT_PASSED, result.output
    assert f"3 problems (0 finished before) on ray-cpu0, ray-cpu1; results in {out}" in result.output
    rows = {r.key: r for r in ResultStore(out).rows()}
    assert set(rows) == {f"level2/{name}" for name in LEVEL2}
    for name in LEVEL2:
        row = rows[f"level2/{name}"]
        assert row.status == "compiled" and row.compiled, row
        assert row.problem == str(level / f"{name}.py")  # the driver's file, not the task's copy
        assert row.kernel == str(out / "candidates" / "level2" / f"{name}.py")  # the driver wrote the candidate
        assert "class ModelNew" in Path(row.kernel).read_text()
    assert "| all | 3 | 3 (100%) | 3 (100%) |" in (out / "summary.md").read_text()


def test_a_graph_run_on_ray_keeps_its_checkpoint_and_reports_on_the_driver(cluster: None, tmp_path: Path) -> None:
    """optimize() with the Ray evaluator: builds as CPU tasks, evaluations on the actors, and an actor killed while
    the generation's candidates are evaluated costs nothing; the run folder holds every report, once."""
    evaluator, markers = _evaluator(tmp_path, delay_s=0.5)
    settings = RunSettings(generations=1, candidates_per_generation=4, max_repairs=0, screen=False, profile=False,
                           eval_concurrency=4)
    killed: list[object] = []

    def on_update(node: str, update: dict[str, object]) -> None:
        if node == "dispatch" and not killed:  # the evaluation phase starts: an actor dies under it
            killed.append(evaluator.actors[0])
            ray.kill(killed[0], no_restart=True)

    try:
        result = optimize(PROBLEM, runs_dir=tmp_path / "runs", settings=settings, evaluator=evaluator, offline=False,
                          llm=scripted(*(answer(s) for s in (1.1, 1.2, 1.3, 1.4))), archive=None,
                          on_update=on_update)
    finally:
        evaluator.close()
    records = result.state["candidates"]
    assert len(records) == 4 and {r["status"] for r in records.values()} == {"passed"}
    folders = [CandidateFolder.of_source(r["source_path"]) for r in records.values()]
    assert all(f.path.parent == result.run_dir / "candidates" for f in folders)  # the driver's run folder
    reports = [f.read_report() for f in folders]
    assert all(r is not None and r.gpu["node"] and r.gpu["cuda_visible_devices"] in ("0", "1") for r in reports)
    assert sorted(_finished(markers).values()) == [1, 1, 1, 1]  # each candidate evaluated to the end once
    assert RunFolder(result.run_dir).checkpoints_path.is_file()
    assert killed and killed[0] not in evaluator.actors and sum(evaluator.attempts.values()) > 4  # replaced, retried


def test_an_evaluator_that_cannot_start_is_one_typed_error_not_endless_retries(cluster: None, tmp_path: Path) -> None:
    settings = EvalSettings(build=BuildSettings(arch="sm_90a"))
    evaluator = RayEvaluator(PROBLEM, settings, ExecutorSettings("ray", retries=5), factory=failing_factory)
    try:
        (candidate,) = candidate_variants(tmp_path, 1)
        with pytest.raises(RayExecutorError, match="the evaluator could not start on a Ray actor") as info:
            evaluator.evaluate(candidate)
        assert "no GPU driver on this node" in str(info.value)  # the actor's own error, named
        assert evaluator.attempts[str(candidate.resolve())] == 1  # not retried: every actor would fail alike
    finally:
        evaluator.close()
