"""Two real processes writing one local archive at once lose nothing and corrupt nothing.

Without the archive's lock, chromadb's persistent store breaks under concurrent writers
(three writers left `get(include=["embeddings"])` failing with "Error finding id"); this
test runs writers and a reader side by side, then checks every record is present once, is
readable with its embedding, and is found by its own vector.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kernelwright.memory.archive import KernelArchive
from kernelwright.memory.embedding import HashedEmbedding
from support.archive import synthetic_records
from support.paths import TESTS

WORKER = r"""
import json, sys, time
sys.path.insert(0, {tests!r})
from support.archive import synthetic_records
from kernelwright.memory.archive import KernelArchive
from kernelwright.memory.embedding import HashedEmbedding
path, role, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
records = synthetic_records(hi)[lo:hi]
archive = KernelArchive.open_local(path, embedding=HashedEmbedding(), lock_timeout_s=120)
out = {{"role": role, "n": 0}}
if role == "writer":
    for i in range(0, len(records), 3):  # small batches: many lock hand-overs between the writers
        archive.add_many(records[i:i + 3])
        out["n"] += len(records[i:i + 3])
else:
    sig = records[0].signature
    deadline = time.time() + 30
    while time.time() < deadline:
        archive.search(sig, k=3)
        out["n"] += 1
        if out["n"] >= 40:
            break
archive.close()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_two_writer_processes_and_a_reader_lose_and_corrupt_nothing(tmp_path: Path) -> None:
    path = tmp_path / "archive"
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS)))
    # writer A: records 0..90, writer B: 60..150 -> 30 overlapping kernels, 150 distinct in all
    jobs = [("writer", 0, 90), ("writer", 60, 150), ("reader", 0, 10)]
    procs = [subprocess.Popen([sys.executable, str(script), str(path), role, str(lo), str(hi)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for role, lo, hi in jobs]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["n"] for r in results[:2]] == [90, 90] and results[2]["n"] > 0

    expected = {r.id: r for r in synthetic_records(150)}
    with KernelArchive.open_local(path, embedding=HashedEmbedding(), create=False) as archive:
        assert archive.count() == 150
        with archive._session(write=False) as col:  # raw checks: every row readable, with its vector
            rows = col.get(include=["embeddings", "documents", "metadatas"])
            assert sorted(rows["ids"]) == sorted(expected)
            assert len(rows["embeddings"]) == 150
            everything = col.query(query_embeddings=[rows["embeddings"][0]], n_results=150, include=[])
            assert sorted(everything["ids"][0]) == sorted(expected)  # the vector index holds all 150 too
        for rid, record in expected.items():
            assert archive.get(rid) == record
