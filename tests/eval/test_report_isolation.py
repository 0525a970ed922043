"""The run report states the isolation candidate code ran under, as the harness's workers reported it
(resources.isolation, tools.sandbox.isolation.describe); HTML strings only, no browser."""

from __future__ import annotations

import html
from pathlib import Path

from kernelwright.eval.fakes.synthetic_run import synthetic_run
from kernelwright.eval.report.page import render_report
from kernelwright.eval.report.run_data import load_run
from kernelwright.tools.run_folder import CandidateFolder
from kernelwright.tools.sandbox.isolation import describe

JAIL = describe({"namespaces": ["net", "mount"], "filesystem": True, "limits": ["nofile", "fsize", "core"],
                 "cgroup_pids": "/sys/fs/cgroup/kernelwright-worker-1", "capabilities": "none"})
OFF = describe(None, "off")


def _run_with(tmp_path: Path, lines: list[str | None]) -> Path:
    """A small recorded run whose first candidates' reports carry `lines` as their isolation (None: none)."""
    run_dir = synthetic_run(tmp_path / "run", n_candidates=6, generations=2)
    cands = load_run(run_dir).candidates.values()
    for cand, line in zip([c for c in cands if c.report], lines, strict=False):
        assert cand.folder is not None
        report = dict(cand.report)
        report["resources"] = {"isolation": line} if line else {}
        CandidateFolder(cand.folder).write_report(report)
    return run_dir


def _isolation_cell(page: str) -> str:
    row = page.split('<tr class="isolation"><th>isolation</th><td>', 1)[1].split("</td></tr>", 1)[0]
    return html.unescape(row)


def test_the_report_states_the_jail_the_workers_reported(tmp_path: Path) -> None:
    run = load_run(_run_with(tmp_path, [JAIL, JAIL, JAIL]))
    assert run.isolation == [(JAIL, 3)]
    cell = _isolation_cell(render_report(run))
    assert cell == f'<div class="isolation-line">{JAIL}</div>'
    assert "namespaces: net+mount; file system: read-only, private paths hidden" in cell and "capabilities: none" in cell


def test_an_unjailed_run_says_off_and_a_mixed_one_counts_each(tmp_path: Path) -> None:
    off = _isolation_cell(render_report(load_run(_run_with(tmp_path / "a", [OFF, OFF]))))
    assert 'off (harness.isolation = "off"): candidate code runs with the harness\'s own rights' in off
    mixed = _isolation_cell(render_report(load_run(_run_with(tmp_path / "b", [JAIL, JAIL, OFF]))))
    assert f"{JAIL} (2 candidates)" in mixed and f"{OFF} (1 candidate)" in mixed
    assert mixed.index(JAIL) < mixed.index(OFF)


def test_a_run_whose_candidates_reached_no_worker_says_it_was_not_recorded(tmp_path: Path) -> None:
    run = load_run(_run_with(tmp_path, [None] * 6))
    assert run.isolation == []
    assert _isolation_cell(render_report(run)) == (
        '<div class="isolation-line">not recorded (no candidate reached an evaluation worker)</div>')
