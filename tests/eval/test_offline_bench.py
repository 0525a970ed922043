"""The offline benchmark's bookkeeping (CPU): success needs a verified kernel at >= 0.95x eager; summaries, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernelwright.eval.bench import offline as bench_offline
from support.paths import PROBLEMS


def _rows() -> list[dict]:
    return [
        {"problem": "01_a", "verified": True, "success": True, "speedup_vs_eager": 2.0, "speedup_vs_compile": 1.5},
        {"problem": "02_b", "verified": True, "success": False, "speedup_vs_eager": 0.8, "speedup_vs_compile": 0.7},
        {"problem": "03_c", "verified": False, "success": False, "status": "unsupported"},
        {"problem": "04_d", "verified": True, "success": True, "speedup_vs_eager": 1.2, "speedup_vs_compile": 1.0},
    ]


def test_summary_counts_and_medians() -> None:
    summary = bench_offline.summarise(_rows(), {"01_a": "fused_chain", "02_b": "fused_chain"})
    assert (summary["n"], summary["verified"], summary["success"]) == (4, 3, 2)
    assert summary["median_speedup_vs_eager_success"] == 1.6
    assert summary["median_speedup_vs_eager_verified"] == 1.2
    assert summary["median_speedup_vs_eager_effective_all"] == 1.1  # 2.0, 1.0 (slower kept eager), 1.0, 1.2
    assert summary["median_speedup_vs_eager_fused_chain_verified"] == 1.4
    assert summary["slower_than_threshold"] == ["02_b"] and summary["not_verified"] == ["03_c"]
    text = bench_offline.markdown(_rows(), summary, {})
    assert "| 02_b |" in text and "0.80x" in text


def test_finished_problems_are_skipped(tmp_path: Path, monkeypatch) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "01_done.py").write_text("# never loaded: its result exists\n")
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    row = {"problem": "01_done", "verified": True, "success": True, "speedup_vs_eager": 1.5, "status": "verified"}
    (out / "results" / "01_done.json").write_text(json.dumps(row))
    never = lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran"))  # noqa: E731
    monkeypatch.setattr(bench_offline, "prepare", never)
    monkeypatch.setattr(bench_offline, "run_problem", never)
    assert bench_offline.main(["--out", str(out), "--suite-dir", str(suite)]) == 0
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["success"] == 1 and (out / "summary.md").exists()


def _stub_suite(tmp_path: Path, names: tuple[str, ...], run_problem, monkeypatch) -> Path:
    """A suite of stub problems where translation, building and evaluator start-up are skipped and
    `run_problem` stands in for the GPU evaluation."""
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in names:
        (suite / name).write_text("# stub\n")
    monkeypatch.setattr(bench_offline, "prepare", lambda problem, out: {"candidates": []})
    monkeypatch.setattr(bench_offline, "prebuild", lambda prepared, jobs: 0.0)
    monkeypatch.setattr(bench_offline, "run_problem", run_problem)
    monkeypatch.setattr(bench_offline, "_start_evaluator", lambda problem, compile_baseline, out=None: None)
    return suite


def test_a_crashing_problem_is_recorded_and_the_run_goes_on(tmp_path: Path, monkeypatch) -> None:
    def fake(problem: Path, out: Path, prep: dict, **kw) -> dict:
        if problem.stem == "01_bad":
            raise RuntimeError("boom")
        return {"problem": problem.stem, "verified": True, "success": True, "speedup_vs_eager": 1.3, "status": "verified"}

    suite = _stub_suite(tmp_path, ("01_bad.py", "02_good.py"), fake, monkeypatch)
    assert bench_offline.main(["--out", str(tmp_path / "o"), "--suite-dir", str(suite)]) == 0
    bad = json.loads((tmp_path / "o" / "results" / "01_bad.json").read_text())
    assert bad["status"] == "crash" and "boom" in bad["message"]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())["summary"]
    assert summary["success"] == 1 and summary["partial"] is False


def test_a_run_stopped_part_way_leaves_a_partial_summary(tmp_path: Path, monkeypatch) -> None:
    def first_then_stop(problem: Path, out: Path, prep: dict, **kw) -> dict:
        if problem.stem == "02_b":
            raise KeyboardInterrupt  # the device's time limit, say
        return {"problem": problem.stem, "verified": True, "success": True, "speedup_vs_eager": 1.4, "status": "verified"}

    suite = _stub_suite(tmp_path, ("01_a.py", "02_b.py"), first_then_stop, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        bench_offline.main(["--out", str(tmp_path / "o"), "--suite-dir", str(suite)])
    data = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert data["summary"]["partial"] is True and [r["problem"] for r in data["rows"]] == ["01_a"]


def test_prewarming_a_baseline_reports_instead_of_raising(tmp_path: Path) -> None:
    """No GPU here: the throwaway worker loads the problem and fails to time; the failure comes back as text."""
    problem = PROBLEMS / "relu_affine.py"
    (future,) = bench_offline.prewarm_compile([problem], 1)
    name, seconds, error = future.result(timeout=300)
    assert name == "relu_affine" and seconds > 0
    assert error is None or "GPU" in error or "CUDA" in error or "cuda" in error, error


def test_gpus_deal_problems_to_child_runs_and_merge_their_rows(tmp_path: Path) -> None:
    """Real child processes (no GPU needed): stub problems fail translation, so each child records crash
    rows; the parent merges every row into one table, with the GPU each came from."""
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("01_a.py", "02_b.py", "03_c.py"):
        (suite / name).write_text("raise RuntimeError('not a problem')\n")
    out = tmp_path / "out"
    code = bench_offline.main(["--out", str(out), "--suite-dir", str(suite), "--gpus", "4,6", "--tune-budget", "0"])
    assert code == 0
    data = json.loads((out / "summary.json").read_text())
    assert {r["problem"]: r["gpu_index"] for r in data["rows"]} == {"01_a": "4", "02_b": "6", "03_c": "4"}
    assert all(r["status"] == "crash" for r in data["rows"]) and data["summary"]["partial"] is False
    assert sorted(p.name for p in (out / "gpu4" / "results").iterdir()) == ["01_a.json", "03_c.json"]


def _history(*trials: tuple[str, str, float | None]) -> object:
    from kernelwright.agents.offline.tune import TuneResult, TuneTrial

    history = [TuneTrial(variant, {}, f"/cands/{variant}.py", status, None if status == "passed" else "wrong_output",
                         speed, speed and speed / 1.1, speed and 0.1 / speed, "local")
               for variant, status, speed in trials]
    return TuneResult("p", max((t for t in history if t.passed), key=lambda t: t.score(), default=None), history, 5)


def _memcheck(statuses: dict[str, str], seen: list[str]):
    def sanitize(path: Path) -> dict:
        seen.append(path.stem)
        status = statuses.get(path.stem, "clean")
        return {"status": status, "sanitized": status == "clean", "message": f"memcheck: {status}"}
    return sanitize


def test_the_best_kernel_is_sanitized_and_memory_errors_fall_back_to_the_next_best() -> None:
    result = _history(("fused", "passed", 1.4), ("tuned_a", "passed", 2.0), ("scalar", "rejected", None),
                      ("tuned_b", "passed", 1.1))
    seen: list[str] = []
    row = bench_offline.outcome(result, _memcheck({"tuned_a": "out_of_bounds"}, seen))
    assert seen == ["tuned_a", "fused"]  # best first, then the next best; never the rejected one
    assert row["verified"] and row["best_variant"] == "fused" and row["speedup_vs_eager"] == 1.4 and row["success"]
    assert (row["sanitized"], row["sanitizer_status"], row["sanitizer_rejected"]) == (True, "clean", ["tuned_a.py"])
    by_variant = {t["variant"]: t for t in row["trials"]}
    assert (by_variant["tuned_a"]["status"], by_variant["tuned_a"]["reason"]) == ("rejected", "out_of_bounds")
    assert by_variant["fused"]["status"] == "passed"


def test_a_problem_whose_every_kernel_fails_memcheck_is_not_verified() -> None:
    result = _history(("fused", "passed", 1.4), ("tuned_a", "passed", 2.0))
    row = bench_offline.outcome(result, _memcheck({"fused": "out_of_bounds", "tuned_a": "out_of_bounds"}, []))
    assert (row["verified"], row["success"], row["status"], row["reason"]) == (False, False, "not_verified", "out_of_bounds")
    assert row["sanitizer_status"] == "out_of_bounds" and row["sanitizer_message"] == "memcheck: out_of_bounds"
    assert "speedup_vs_eager" not in row and bench_offline.sanitized_cell(row) == "no (out_of_bounds)"


def test_a_sanitizer_that_cannot_run_keeps_the_best_verified_but_unsanitized() -> None:
    row = bench_offline.outcome(_history(("fused", "passed", 1.4)), _memcheck({"fused": "unavailable"}, []))
    assert row["verified"] and row["sanitized"] is False and row["sanitizer_status"] == "unavailable"
    nothing = bench_offline.outcome(_history(("fused", "rejected", None)), _memcheck({}, []))
    assert not nothing["verified"] and "reason" not in nothing and bench_offline.sanitized_cell(nothing) == "-"


def test_run_problem_sanitizes_inside_the_evaluators_lifetime(tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from kernelwright.agents.offline import tune as tune_module
    from kernelwright.tools.harness.sanitizer import SanitizeVerdict

    class Harness:
        reference_durations_s = {"total": 1.0}
        open = False

        def __enter__(self):
            self.open = True
            return self

        def __exit__(self, *exc):
            self.open = False

        def evaluate(self, path):
            raise AssertionError("tune is faked")

        def sanitize(self, path):
            assert self.open
            return SanitizeVerdict("out_of_bounds" if "tuned" in str(path) else "clean", "m", 0.1)

        def baselines(self):
            return {"eager": {"median_ms": 0.2}}

    history = _history(("fused", "passed", 1.2), ("tuned_x", "passed", 1.6))
    monkeypatch.setattr(tune_module, "tune", lambda *a, **k: history)
    prep = {"candidates": [SimpleNamespace(variant="fused", kept_aten_ops=())], "traced": []}
    row = bench_offline.run_problem(tmp_path / "p.py", tmp_path, prep, tune_budget=2, compile_baseline=False,
                                    evaluator=Harness())
    assert row["best_variant"] == "fused" and row["sanitized"] and row["sanitizer_rejected"] == ["tuned_x.py"]
    assert row["eager_ms"] == 0.2 and row["problem"] == "p"


def test_summary_and_markdown_say_sanitized() -> None:
    rows = _rows()
    rows[0].update(sanitized=True, sanitizer_status="clean")
    rows[1].update(sanitized=False, sanitizer_status="unavailable")  # rows[3] was measured before memcheck ran
    summary = bench_offline.summarise(rows, {})
    assert summary["sanitized"] == 1 and summary["verified_not_sanitized"] == ["02_b", "04_d"]
    text = bench_offline.markdown(rows, summary, {})
    assert text.splitlines()[0].startswith("Precision profile: strict (fp32 reference with TF32 off")
    assert "| sanitized |" in text.splitlines()[2]
    assert "| 01_a |  | ? | yes | yes |" in text and "| no | no (unavailable) |" in text and "| 04_d |  | ? | yes | - |" in text
