"""The kernel archive on a real persistent Chroma: store, retrieve, dedup, rank, share, degrade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kernelwright.memory.archive import ArchiveUnavailable, KernelArchive
from kernelwright.memory.embedding import HashedEmbedding, MiniLMEmbedding
from kernelwright.memory.prompting import examples_for_prompt, format_examples, retrieve_examples
from kernelwright.memory.records import ArchiveRecord, ProblemSignature
from support.archive import make_record, signature, synthetic_records


@pytest.fixture()
def archive(tmp_path: Path) -> KernelArchive:
    with KernelArchive.open_local(tmp_path / "archive", embedding=HashedEmbedding()) as opened:
        yield opened


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedding:
    return MiniLMEmbedding()


def test_record_round_trips_through_json() -> None:
    record = make_record("softmax", idea="shuffle")
    again = ArchiveRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert again.techniques() == ("warp_shuffle",) and again.gpu_arch == "sm_90" and again.verified


def test_record_with_a_forged_id_is_refused() -> None:
    data = make_record().to_dict()
    data["kernel_source"] += "\n# a comment does not change the id\nx = 1\n"
    with pytest.raises(Exception, match="not the hash"):
        ArchiveRecord.from_dict(data)


def test_real_persistent_round_trip_with_the_packaged_model(tmp_path: Path, minilm: MiniLMEmbedding) -> None:
    path = tmp_path / "archive"
    records = [make_record(f, variant=i) for i, f in enumerate(["softmax", "relu", "matmul", "conv_bn_relu"])]
    with KernelArchive.open_local(path, embedding=minilm) as archive:
        assert set(archive.add_many(records).values()) == {"added"}
    with KernelArchive.open_local(path, embedding=minilm, create=False) as reopened:  # from disk
        assert reopened.count() == 4
        assert reopened.get(records[0].id) == records[0]
        assert reopened.get(records[0].id[:12]) == records[0]  # unique prefix
        assert reopened.add(records[1]) == "kept"  # the same kernel again is not a second entry
        assert reopened.count() == 4
        query = signature("softmax", shape=(64, 8192), dtype="float16")  # related, not identical
        hits = reopened.search(query, k=4, diversity=0.0)
        assert hits[0].record.signature.name == "softmax"
        assert hits[0].similarity > max(h.similarity for h in hits[1:])
        text_hits = reopened.search("matrix multiplication mm", k=1)
        assert text_hits[0].record.signature.name == "matmul"
        out = tmp_path / "export.jsonl"
        assert reopened.export_jsonl(out) == 4
    with KernelArchive.open_local(tmp_path / "other", embedding=minilm) as other:
        assert other.import_jsonl(out) == {"added": 4}
        assert other.import_jsonl(out) == {"kept": 4}
        assert {r.id for r in other.records()} == {r.id for r in records}
        assert other.get(records[2].id) == records[2]


def test_dedup_keeps_the_better_evidence(archive: KernelArchive) -> None:
    weak = make_record("relu", status="needs_gpu", speedup=None, trials=0)
    strong = make_record("relu", speedup=2.0)
    assert weak.id == strong.id
    assert archive.add(weak) == "added"
    assert archive.add(strong) == "replaced"
    assert archive.add(weak) == "kept"
    faster = make_record("relu", speedup=3.0, created_at=5.0)
    assert archive.add(faster) == "replaced"
    assert archive.count() == 1 and archive.get(strong.id).speedup_vs_eager == 3.0
    # inside one batch too: the best of the duplicates goes in, once
    dup = make_record("gelu", speedup=1.1)
    assert archive.add_many([dup, make_record("gelu", speedup=4.0), dup]) == {dup.id: "added"}
    assert archive.get(dup.id).speedup_vs_eager == 4.0 and archive.count() == 2


def test_search_is_verified_only_and_prefers_the_same_arch(archive: KernelArchive) -> None:
    rejected = make_record("softmax", variant=1, status="rejected", cc="9.0")
    on_a100 = make_record("softmax", variant=2, idea="shared", cc="8.0")
    on_h100 = make_record("softmax", variant=3, idea="shared", cc="9.0")
    archive.add_many([rejected, on_a100, on_h100, make_record("relu")])
    ids = [h.record.id for h in archive.search(signature("softmax"), k=4, gpu_arch="sm_90", diversity=0.0)]
    assert rejected.id not in ids
    assert ids.index(on_h100.id) < ids.index(on_a100.id)
    ids80 = [h.record.id for h in archive.search(signature("softmax"), k=4, gpu_arch="sm_80", diversity=0.0)]
    assert ids80.index(on_a100.id) < ids80.index(on_h100.id)
    every = archive.search(signature("softmax"), k=4, diversity=0.0)
    assert all(h.record.verified for h in every)


def test_a_same_arch_kernel_far_down_the_text_ranking_is_still_considered(archive: KernelArchive) -> None:
    archive.add_many([make_record("softmax", variant=i, cc="8.0", shape=(128, 4096 + i)) for i in range(80)])
    far = make_record("layernorm", variant=99, cc="9.0", shape=(7, 3), dtype="float16")
    archive.add(far)
    # k above the pool size and no diversity: the hits are exactly the pool that was considered
    nearest = archive.search(signature("softmax"), k=100, pool=8, diversity=0.0)
    assert far.id not in [h.record.id for h in nearest] and len(nearest) < 81
    hits = archive.search(signature("softmax"), k=100, gpu_arch="sm_90", pool=8, diversity=0.0)
    assert far.id in [h.record.id for h in hits]  # the same-arch pool brought it in beside the nearest


def test_unverified_kernels_crowding_the_neighbourhood_do_not_hide_verified_ones(archive: KernelArchive) -> None:
    archive.add_many([make_record("softmax", variant=i, status="rejected") for i in range(60)])
    lone = make_record("cumsum", variant=99, shape=(3, 5), dtype="int64")
    archive.add(lone)
    assert [h.record.id for h in archive.search(signature("softmax"), k=3, pool=8)] == [lone.id]


def test_diversity_gives_different_ideas_not_copies(archive: KernelArchive) -> None:
    copies = [make_record("softmax", idea="shuffle", variant=i, speedup=3.0) for i in range(6)]
    other_idea = make_record("softmax", idea="shared", variant=50, speedup=2.0)
    archive.add_many([*copies, other_idea, make_record("layernorm", variant=60)])
    plain = archive.search(signature("softmax"), k=3, diversity=0.0)
    assert all(h.record.techniques() == ("warp_shuffle",) for h in plain)  # relevance alone: three copies
    diverse = archive.search(signature("softmax"), k=3)  # the default diversity
    assert other_idea.id in [h.record.id for h in diverse]
    assert sum(h.record.techniques() == ("warp_shuffle",) for h in diverse) == 1
    assert len(archive.search(signature("softmax"), k=8)) == 8  # copies still fill k when nothing else is left


def test_per_run_keeps_a_long_run_from_filling_every_place(archive: KernelArchive) -> None:
    # One long run of the nearest problem, two shorter runs of farther ones: plain top-k is all the long run.
    long_run = [make_record("softmax", variant=i, speedup=1.0 + i / 10, run_id="long") for i in range(10)]
    near = [make_record("attention", variant=20 + i, run_id="near") for i in range(3)]
    far = [make_record("layernorm", variant=30 + i, run_id="far") for i in range(3)]
    archive.add_many([*long_run, *near, *far])
    plain = archive.search(signature("softmax"), k=6, diversity=0.0)
    assert {h.record.run_id for h in plain} == {"long"}
    capped = archive.search(signature("softmax"), k=6, diversity=0.0, per_run=2, pool=64)
    runs = [h.record.run_id for h in capped]
    assert sorted(runs) == ["far", "far", "long", "long", "near", "near"]
    # the long run's two are its fastest (speedup breaks the tie of equal similarity)
    assert sorted(h.record.speedup_vs_eager for h in capped if h.record.run_id == "long") == [1.8, 1.9]


def test_stats_and_entries(archive: KernelArchive) -> None:
    archive.add_many(synthetic_records(30))
    stats = archive.stats()
    assert stats["records"] == 30 and stats["verified"] == 24 and stats["by_status"] == {"passed": 24, "rejected": 6}
    assert sum(stats["by_arch"].values()) == 24
    rows = archive.entries(verified_only=True, limit=5)
    assert len(rows) == 5 and all(m["verified"] for _, m in rows)
    assert [m["created_at"] for _, m in rows] == sorted((m["created_at"] for _, m in rows), reverse=True)


def test_import_skips_bad_lines_with_a_warning(archive: KernelArchive, tmp_path: Path) -> None:
    good = make_record("cumsum")
    file = tmp_path / "in.jsonl"
    file.write_text(json.dumps(good.to_dict()) + "\nnot json\n" + json.dumps({"id": "x"}) + "\n")
    with capture_logs() as logs:
        assert archive.import_jsonl(file) == {"added": 1, "invalid": 2}
    assert sum(e["event"] == "archive_import_bad_line" for e in logs) == 2


def test_another_embedding_is_refused_not_mixed(tmp_path: Path) -> None:
    with KernelArchive.open_local(tmp_path / "a", embedding=HashedEmbedding(256)) as archive:
        archive.add(make_record())
    with pytest.raises(ArchiveUnavailable, match="embedding"):
        KernelArchive.open_local(tmp_path / "a", embedding=HashedEmbedding(128))


def test_damaged_or_missing_archive_degrades_to_no_examples(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ArchiveUnavailable):
        KernelArchive.open_local(damaged, embedding=HashedEmbedding())
    sig = signature("relu")
    for where in (damaged, tmp_path / "missing"):
        with capture_logs() as logs:
            assert retrieve_examples(where, sig, k=3) == []
        assert [e["event"] for e in logs] == ["archive_unavailable"] and logs[0]["log_level"] == "warning"
    assert not (tmp_path / "missing").exists()  # reading never creates an archive
    assert examples_for_prompt(damaged, sig) == ""


def test_examples_for_prompt_formats_whole_examples_within_budget(archive: KernelArchive) -> None:
    archive.add_many([make_record("softmax", idea="shuffle", speedup=3.2), make_record("relu", variant=2)])
    text = examples_for_prompt(archive, signature("softmax"), gpu_arch="sm_90", k=2)
    assert "### Example 1" in text and "softmax_kernel_0" in text and "3.20x vs eager" in text
    assert "warp_shuffle" in text and text.count("```python") == text.count("### Example")
    hits = archive.search(signature("softmax"), k=2)
    short = format_examples(hits, max_chars=len(text) - 50)
    assert short.count("### Example") == 1  # the second did not fit and is left out whole
    assert format_examples([], 1000) == ""


def test_signature_from_a_traced_functional_form() -> None:
    torch = pytest.importorskip("torch")
    from kernelwright.tools.problem.functional import functional_form

    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU())
    form = functional_form(model, [torch.randn(4, 16)], module_source="")
    sig = ProblemSignature.from_functional(form, "linear_relu")
    assert sig == ProblemSignature.from_functional(form.to_dict(), "linear_relu")
    assert "aten.relu.default" in sig.op_set() and sig.inputs[0].shape == (4, 16)
    assert [p.shape for p in sig.params] == [(8, 16), (8,)]
    assert "relu" in sig.text() and sig.key() == ProblemSignature.from_dict(sig.to_dict()).key()




def test_tools_never_import_chromadb() -> None:
    import subprocess
    import sys

    code = ("import sys, kernelwright.tools.harness.evaluate, kernelwright.tools.problem.functional,"
            " kernelwright.tools.source_hash;"
            "print('chromadb' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


def _write_candidate(run_dir: Path, source: str, report: dict, meta: dict) -> Path:
    from kernelwright.tools.source_hash import candidate_id

    folder = run_dir / "candidates" / candidate_id(source)[:16]
    folder.mkdir(parents=True)
    (folder / "candidate.py").write_text(source)
    (folder / "meta.json").write_text(json.dumps({"id": candidate_id(source), **meta}))
    (folder / "report.json").write_text(json.dumps(report))
    return folder


FUNCTIONAL = {"method": "export", "source": "def forward(x):\n    relu = torch.ops.aten.relu.default(x)\n",
              "ops": [{"name": "relu", "target": "aten.relu.default", "args": ["x"],
                       "outputs": [{"shape": [128, 4096], "dtype": "float32"}]}],
              "args": [{"name": "x", "kind": "input", "target": "input[0]",
                        "spec": {"shape": [128, 4096], "dtype": "float32"}}],
              "outputs": [{"shape": [128, 4096], "dtype": "float32"}], "op_counts": {"aten.relu.default": 1}}


def test_a_runs_verified_candidates_go_into_the_archive(archive: KernelArchive, tmp_path: Path) -> None:
    from kernelwright.memory.prompting import archive_run
    from kernelwright.tools.harness.results import EvalReport

    run_dir = tmp_path / "run"
    src_ok = make_record("relu", idea="vector").kernel_source
    report = EvalReport(problem="p.py", candidate="c.py", status="passed", stage="done",
                        trials=[{"phase": "check", "index": 0, "outputs": [{"max_abs_err": 2e-7}]}] * 5,
                        timing={"candidate": {"median_ms": 0.01}, "eager": {"median_ms": 0.03}},
                        speedup_vs_eager=3.0, speedup_vs_compile=1.2,
                        gpu={"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]},
                        profile={"kernels": [{"name": "relu_kernel", "duration_ns": 9000}]})
    meta = {"agent": "mutator", "generation": 2, "temperature": 0.7, "prompt": "mutator@v1", "parents": ["ab" * 32],
            "repairs": 0}
    folder = _write_candidate(run_dir, src_ok, report.to_dict(), meta)
    rejected = EvalReport(problem="p.py", candidate="c.py", status="rejected", reason="wrong_output").to_dict()
    _write_candidate(run_dir, make_record("relu", variant=7).kernel_source, rejected, meta)
    broken = run_dir / "candidates" / "0000broken"
    broken.mkdir()
    (broken / "report.json").write_text("{not json")
    with capture_logs() as logs:
        assert archive_run(archive, run_dir, FUNCTIONAL, run_id="run-42", problem_name="relu") == {"skipped": 1,
                                                                                                     "added": 1}
    assert any(e["event"] == "archive_skip_candidate" for e in logs)
    (hit,) = archive.search(FUNCTIONAL, k=3, gpu_arch="sm_90")
    r = hit.record
    assert r.kernel_source == src_ok and r.verified and r.gpu_arch == "sm_90" and r.run_id == "run-42"
    assert r.correctness["trials"] == 5 and r.correctness["max_abs_err"] == 2e-7
    assert r.lineage.agent == "mutator" and r.lineage.parents == ("ab" * 32,) and r.lineage.prompt == "mutator@v1"
    assert r.timing == {"candidate": 0.01, "eager": 0.03} and "relu_kernel: 9.0 us" in r.profile_summary
    assert r.functional_source == FUNCTIONAL["source"] and r.signature.name == "relu"
    assert r.signature.op_set() == {"aten.relu.default"}
    assert r == record_from_candidate_again(folder, r)


def record_from_candidate_again(folder: Path, like: ArchiveRecord) -> ArchiveRecord:
    from dataclasses import replace

    from kernelwright.memory.records import record_from_candidate

    again = record_from_candidate(folder, FUNCTIONAL, run_id=like.run_id, problem_name="relu")
    return replace(again, created_at=like.created_at)


def test_default_embedding_is_minilm_when_installed_else_hashed_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelwright.memory import embedding

    assert isinstance(embedding.default_embedding(), MiniLMEmbedding)  # the test environment has the model
    monkeypatch.setattr(embedding, "minilm_installed", lambda: False)
    with capture_logs() as logs:
        fallback = embedding.default_embedding()
    assert isinstance(fallback, HashedEmbedding)
    assert [e["event"] for e in logs] == ["archive_embedding_fallback"] and logs[0]["log_level"] == "warning"
