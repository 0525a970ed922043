"""tools/run_folder: the one owner of a run folder's files, their models, and old files it still reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kernelwright.tools.run_folder import (
    LINEAGE_KEY,
    CandidateFolder,
    CandidateMeta,
    CandidateProfile,
    CandidateReport,
    RunFolder,
    RunInfo,
    lineage_of,
)
from kernelwright.tools.source_hash import candidate_id

SOURCE = "import torch\n\n\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return x.relu()\n"


def test_a_stored_candidate_reads_back_as_written(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    meta = CandidateMeta(agent="offline", generation=2, model="offline", temperature=0.0, prompt="offline",
                         parents=("a" * 64,), variant="fused_tuned", params={"k0.TPR": 256, "h0.GEMM": "tf32x3"},
                         kept_aten_ops=("aten.mm.default",), seeded_from="b" * 64, extra={"plugin_note": "x"})
    cid, folder = run.store_candidate(SOURCE, meta)
    assert cid == candidate_id(SOURCE) and folder.path == run.candidates_path / cid[:16]
    assert folder.read_source() == SOURCE and folder.candidate_id() == cid
    back = folder.read_meta()
    assert back is not None and back == CandidateMeta(**{**_fields(meta), "id": cid})
    assert CandidateMeta.from_dict(back.to_dict()) == back
    assert json.loads(folder.meta_path.read_text())[LINEAGE_KEY] == ["a" * 64]
    assert [f.path for f in run.candidates()] == [folder.path]


def test_the_first_proposal_of_a_kernel_keeps_its_lineage(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    _, folder = run.store_candidate(SOURCE, CandidateMeta(agent="translator", generation=0))
    # the same kernel, differently laid out (same normalised source), proposed again by a mutator
    cid, again = run.store_candidate(SOURCE + "\n# a comment\n", CandidateMeta(agent="mutator", parents=("p",)))
    assert again == folder and folder.read_source() == SOURCE
    meta = folder.read_meta()
    assert meta is not None and meta.agent == "translator" and meta.parents == () and meta.id == cid


def test_meta_written_by_earlier_versions_loads() -> None:
    old_llm = {"id": "c" * 64, "agent": "mutator", "generation": 3, "model": "m", "temperature": 0.7,
               "prompt": "mutator@v1", "prompt_sha256": "ab", "parents": ["p" * 64], "repairs": 1, "repair_depth": 0,
               "plugin_key": [1, 2]}
    meta = CandidateMeta.from_dict(old_llm)
    assert (meta.agent, meta.generation, meta.parents, meta.repairs) == ("mutator", 3, ("p" * 64,), 1)
    assert meta.params is None and meta.extra == {"plugin_key": [1, 2]}
    assert meta.to_dict() == old_llm  # nothing lost, nothing added
    renamed = CandidateMeta.from_dict({"id": "d", "parent_ids": ["q"], "generation": None})
    assert renamed.parents == ("q",) and renamed.generation is None and "parent_ids" not in renamed.to_dict()
    bare = CandidateMeta.from_dict({})
    assert bare == CandidateMeta() and bare.temperature is None and bare.repair_depth == 0


def test_lineage_reads_the_one_key_and_the_old_one() -> None:
    assert lineage_of({LINEAGE_KEY: ["a", "b"]}) == ("a", "b")
    assert lineage_of({"parent_ids": ["a"]}) == ("a",)  # run state and run record of earlier versions
    assert lineage_of({LINEAGE_KEY: [], "parent_ids": None}) == ()


def test_absent_broken_or_non_object_files_read_as_none(tmp_path: Path) -> None:
    folder = CandidateFolder(tmp_path / "c")
    folder.path.mkdir()
    assert folder.read_meta() is None and folder.read_report() is None and folder.read_profile() is None
    assert folder.candidate_id() == "c"  # no metadata: the folder's name
    folder.meta_path.write_text("{half")
    folder.report_path.write_text("[1, 2]")
    folder.profile_path.write_text("null")
    assert folder.read_meta() is None and folder.read_report() is None and folder.read_profile() is None
    nothing = RunFolder(tmp_path / "nothing")
    assert nothing.read_info() == RunInfo() and nothing.candidates() == [] and not nothing.is_run()


def test_reports_are_replaced_atomically_and_merged(tmp_path: Path) -> None:
    folder = CandidateFolder(tmp_path)
    harness = {"status": "passed", "stage": "done", "speedup_vs_eager": 2, "speedup_vs_compile": None,
               "trials": [{"index": 0}], "gpu": {"name": "H100"}, "weak_checks": ["w"], "custom": {"kept": True}}
    folder.write_report(harness)
    report = folder.read_report()
    assert report is not None and report.to_dict() == harness  # the harness's fields, all of them
    assert (report.status, report.speedup_vs_eager, report.weak_checks) == ("passed", 2.0, ["w"])
    assert report.gpu == {"name": "H100"} and report.trials == [{"index": 0}] and report.stage == "done"
    merged = folder.update_report({"sanitizer": {"status": "clean"}})
    assert merged.sanitizer == {"status": "clean"} and folder.read_report() == merged
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.report_path.name]  # no temporary file left
    assert CandidateReport.from_dict({}).status == "error" and CandidateReport({}).sanitizer is None


def test_profile_round_trip_and_availability(tmp_path: Path) -> None:
    folder = CandidateFolder(tmp_path)
    measured = CandidateProfile("k: 82% of DRAM bandwidth", {"available": True, "kernels": [{"name": "k"}]})
    folder.write_profile(measured)
    assert folder.read_profile() == measured and measured.available and measured.kernels == [{"name": "k"}]
    assert json.loads(folder.profile_path.read_text())["summary"] == "k: 82% of DRAM bandwidth"
    assert not CandidateProfile.from_dict({"summary": "profiler unavailable: x", "available": False}).available
    assert not CandidateProfile.from_dict({"unavailable": "ncu missing"}).available
    old = CandidateProfile.from_dict({"summary": "s", "kernels": [{"name": "k", "duration_ns": 9000}]})
    assert old.available and old.summary == "s" and CandidateProfile.from_dict(old.to_dict()) == old


def test_the_run_record_merges_field_by_field(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.update_info(run_id="r1", problem="p.py", started="2025-06-12T10:15:00+0000", status="running")
    info = run.update_info(status="finished", best={"id": "b", LINEAGE_KEY: ["a"]}, generations_done=3,
                           llm={"model": "m"}, models=["m"])
    assert info == run.read_info() and info.run_id == "r1" and info.status == "finished"
    assert info.best == {"id": "b", LINEAGE_KEY: ["a"]} and info.generations_done == 3
    assert info.llm == {"model": "m"} and info.models == ["m"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [run.info_path.name]
    old = RunInfo.from_dict({"best": {"id": "b", "parent_ids": ["a"]}})  # before the lineage had one name
    assert lineage_of(old.best) == ("a",) and old.llm is None and old.models is None and old.started == ""


def test_events_are_appended_whole_and_broken_lines_are_counted(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert not run.is_run()
    log = run.event_log("r1")
    log.emit("run_start", resumed=log.resumed, pid=1)
    log.emit("node_start", node="translate")
    log.close()
    log.emit("ignored_after_close")
    with open(run.events_path, "a") as fh:
        fh.write('{"event": "node_end", "node": "transl')  # a kill mid-write
    events, bad = run.read_events()
    assert [e["event"] for e in events] == ["run_start", "node_start"] and bad == 1
    assert all(e["run_id"] == "r1" and "ts" in e and "t" in e for e in events)
    assert run.is_run() and run.event_log("r1").resumed


def test_the_owner_imports_only_what_tools_may(tmp_path: Path) -> None:
    code = ("import sys, kernelwright.tools.run_folder;"
            "print(sorted(m for m in ('pydantic', 'langgraph', 'langchain_core', 'chromadb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         cwd=tmp_path)  # not the repository root, whose kernelwright/ is not the package
    assert out.stdout.strip() == "[]"


def _fields(meta: CandidateMeta) -> dict:
    from dataclasses import fields

    return {f.name: getattr(meta, f.name) for f in fields(meta)}
