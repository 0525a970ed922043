"""The launch-noise probe (eval/bench/launch_noise.py): which CPUs each condition keeps busy, that the spinning
processes run where they are pinned and stop, and the summary's arithmetic. Its timings need a GPU (the device
machine runs it)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kernelwright.eval.bench.launch_noise import conditions, main, spinning, summarise


def _paired(cpu: int) -> list[int]:
    return [cpu % 8, cpu % 8 + 8]


def test_conditions_load_the_timing_cpus_sibling_or_every_other_core() -> None:
    plan = conditions(3, range(16), _paired)
    assert plan["idle"] == [] and plan["sibling"] == [11]
    assert plan["other_cores"] == [c for c in range(16) if c not in (3, 11)]
    no_smt = conditions(0, [0, 1, 2], lambda c: [c])
    assert no_smt == {"idle": [], "sibling": [], "other_cores": [1, 2]}


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs CPU affinity")
def test_spinning_processes_run_pinned_and_stop_after_the_block() -> None:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    with spinning([cpu]) as procs:
        time.sleep(0.5)
        assert all(p.is_alive() for p in procs)
        assert os.sched_getaffinity(procs[0].pid) == {cpu}
    assert not any(p.is_alive() for p in procs)


def test_summary_compares_each_condition_with_idle() -> None:
    out = summarise({"idle": [2.0, 2.2, 1.8], "sibling": [3.0, 2.4, 2.6]})
    assert out["idle"]["median_ms"] == 2.0 and out["idle"]["over_idle"] == 1.0
    assert out["sibling"]["median_ms"] == 2.6 and out["sibling"]["over_idle"] == pytest.approx(1.3)
    assert out["sibling"]["spread"] == pytest.approx(0.6 / 2.6)


def test_a_missing_problem_is_refused_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "none.py"), "--out", str(tmp_path / "o.json")]) == 2
    assert "no problem file" in capsys.readouterr().err


def test_a_file_that_is_no_problem_is_refused_with_exit_2_and_the_loaders_message(tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("class Model:\n    pass\n")  # no get_inputs, no get_init_inputs
    assert main([str(bad), "--out", str(tmp_path / "o.json")]) == 2
    assert "get_inputs" in capsys.readouterr().err and not (tmp_path / "o.json").exists()
