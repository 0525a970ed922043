"""Archive benchmark: insertion throughput and retrieval latency at 10,000 records.

    python -m kernelwright.eval.bench.archive --records 10000 --queries 200 --out bench_archive.json

Uses the real offline embedding (packaged all-MiniLM-L6-v2 on CPU) and a real persistent Chroma
folder. A query is what a graph node pays: embed the signature text, fetch the nearest pool (and
the same-arch pool), re-rank with diversity, read the k chosen records. The first query (model
load) is reported apart from the steady-state figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kernelwright.eval.fakes.synthetic_archive import FAMILIES, signature, synthetic_records
from kernelwright.memory.archive import KernelArchive
from kernelwright.memory.embedding import MiniLMEmbedding


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(n_records: int, n_queries: int, batch: int, path: Path, k: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]  # other processes on the cores move these figures: record it
    records = synthetic_records(n_records, body_lines=100)  # ~4 kB kernels, like real candidates
    embedding = MiniLMEmbedding()
    t0 = time.perf_counter()
    embedding(["warm-up"])  # model load, reported apart
    load_s = time.perf_counter() - t0
    archive = KernelArchive.open_local(path, embedding=embedding)
    reused = archive.count() == n_records  # --path of an earlier run: measure retrieval again only
    t0 = time.perf_counter()
    for i in range(0, 0 if reused else len(records), batch):
        archive.add_many(records[i:i + batch])
    insert_s = time.perf_counter() - t0
    assert archive.count() == n_records

    families = sorted(FAMILIES)

    def queries(salt: int) -> list[Any]:  # shapes no record and no earlier query has: every embedding is computed
        return [signature(families[i % len(families)], shape=(64 + i % 7, 100_000 * salt + 13 * i), dtype="float16")
                for i in range(n_queries)]

    t0 = time.perf_counter()
    archive.search(queries(9)[0], k, gpu_arch="sm_90")  # loads the verified snapshot
    first_ms = (time.perf_counter() - t0) * 1e3
    results: dict[str, Any] = {}
    for salt, (label, arch) in enumerate((("no_arch", None), ("with_arch", "sm_90")), 1):
        samples, embed = [], []
        for q in queries(salt):
            t0 = time.perf_counter()
            hits = archive.search(q, k, gpu_arch=arch)
            samples.append((time.perf_counter() - t0) * 1e3)
            assert hits and all(h.record.verified for h in hits)
        for i, q in enumerate(queries(salt)[:50]):
            t0 = time.perf_counter()
            embedding([f"{q.text()}; probe {i}"])  # unseen text: the model runs
            embed.append((time.perf_counter() - t0) * 1e3)
        results[label] = {"median_ms": statistics.median(samples), "p95_ms": _pct(samples, 0.95),
                          "max_ms": max(samples), "embed_median_ms": statistics.median(embed)}
    archive.close()
    return {"records": n_records, "queries": n_queries, "k": k, "batch": batch,
            "distinct_signatures": len({r.signature.text() for r in records}),
            "model_load_s": round(load_s, 2), "insert_s": None if reused else round(insert_s, 1),
            "insert_per_s": None if reused else round(n_records / insert_s, 1), "first_query_ms": round(first_ms, 1),
            "search": {k_: {m: round(v, 2) for m, v in d.items()} for k_, d in results.items()},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500, help="records per add_many (one lock, one write)")
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--path", type=Path, default=None, help="archive folder (default: a fresh temp dir)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.records, args.queries, args.batch, args.path or Path(tmp) / "archive", args.k)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
