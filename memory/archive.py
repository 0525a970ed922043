"""The kernel archive: every evaluated kernel in a Chroma collection, retrieved as prompt examples.

Local archives are a chromadb PersistentClient folder; a team can share a Chroma server
(HttpClient) instead. Ids are `candidate_id(kernel_source)`, so one kernel is one entry.

Two processes on one local folder: chromadb's persistent store is not safe for concurrent
writers (measured: three writers with long-lived clients left the vector segment unreadable,
"Error finding id"), so every local operation takes a file lock (exclusive to write, shared to
read), and a process reopens its client whenever another process has written since (a
generation counter beside the data) and closes it after each write so what it wrote is on
disk before the lock is released.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from kernelwright.memory.embedding import default_embedding, embedding_id
from kernelwright.memory.location import default_archive_path
from kernelwright.memory.locking import FileLock
from kernelwright.memory.ranking import Candidate, select
from kernelwright.memory.records import ArchiveRecord, ProblemSignature, RecordError
from kernelwright.memory.verified_index import VerifiedIndex
from kernelwright.tools.errors import KernelwrightError

log = structlog.get_logger(__name__)

COLLECTION = "kernelwright_kernels_v1"
AddOutcome = Literal["added", "replaced", "kept"]


class ArchiveUnavailable(KernelwrightError):
    """The archive cannot be opened or read (missing, damaged, busy, another embedding, server down)."""

    kind = "archive"


@dataclass(frozen=True, slots=True)
class SearchHit:
    record: ArchiveRecord
    score: float  # relevance after re-ranking (higher is better)
    similarity: float  # cosine similarity of the text embeddings


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)  # telemetry would be a network call


def record_metadata(record: ArchiveRecord) -> dict[str, Any]:
    """Flat scalars for Chroma's filters and the re-ranker (the full record is the document)."""
    sig = record.signature
    meta: dict[str, Any] = {
        "verified": record.verified, "status": record.status, "problem_key": sig.key(), "problem_name": sig.name,
        "ops": "|".join(sorted(sig.op_set())), "dtypes": "|".join(sorted(sig.dtypes())),
        "techniques": ",".join(record.techniques()), "gpu_name": record.gpu_name or "",
        "gpu_arch": record.gpu_arch or "", "run_id": record.run_id, "agent": record.lineage.agent,
        "created_at": float(record.created_at),
    }
    for key in ("speedup_vs_eager", "speedup_vs_compile"):
        if getattr(record, key) is not None:
            meta[key] = float(getattr(record, key))
    return meta


def _query_signature(query: Any) -> tuple[ProblemSignature | None, str]:
    if isinstance(query, str):
        return None, query
    sig = query if isinstance(query, ProblemSignature) else ProblemSignature.from_functional(query)
    return sig, sig.text()


class KernelArchive:
    """One Chroma collection of `ArchiveRecord`s. Build with `open_local` or `open_server`."""

    def __init__(self, connect: Callable[[], Any], embedding: Any, *, where: str, lock: FileLock | None = None,
                 lock_timeout_s: float = 60.0) -> None:
        self._connect = connect
        self.embedding = embedding
        self.where = where
        self._lock = lock
        self.lock_timeout_s = lock_timeout_s
        self._client: Any = None
        self._collection: Any = None
        self._generation: str | None = None
        self._index: VerifiedIndex | None = None  # snapshot of the verified records, per generation
        self._index_generation: str | None = None
        self.log = log.bind(archive=where)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def open_local(cls, path: str | Path | None = None, *, embedding: Any = None, create: bool = True,
                   lock_timeout_s: float = 60.0) -> KernelArchive:
        path = Path(path) if path is not None else default_archive_path()
        if not path.is_dir():
            if not create:
                raise ArchiveUnavailable("no archive here", where=str(path))
            path.mkdir(parents=True, exist_ok=True)

        def connect() -> Any:
            import chromadb

            return chromadb.PersistentClient(path=str(path), settings=_settings())

        archive = cls(connect, embedding or default_embedding(), where=str(path),
                      lock=FileLock(path / ".kernelwright.lock"), lock_timeout_s=lock_timeout_s)
        # Fail now, not at first use, when the folder is damaged. Exclusive: opening may create the
        # database or the collection, and Chroma's creation races when two processes do it at once
        # (seen in CI: "error returned from database" for a reader opening beside two writers).
        with archive._session(write=True):
            pass
        return archive

    @classmethod
    def open_server(cls, host: str, port: int, *, embedding: Any = None, ssl: bool = False,
                    headers: dict[str, str] | None = None) -> KernelArchive:
        """A shared Chroma server (`chroma run --path DIR --port N`); it serialises writers itself."""

        def connect() -> Any:
            import chromadb

            return chromadb.HttpClient(host=host, port=port, ssl=ssl, headers=headers, settings=_settings())

        archive = cls(connect, embedding or default_embedding(), where=f"{'https' if ssl else 'http'}://{host}:{port}")
        with archive._session(write=False):
            pass
        return archive

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a half-broken client must not hide the original error
                pass
        self._client = self._collection = None

    def __enter__(self) -> KernelArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions: lock, (re)connect, validate ---------------------------------------------------
    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Any]:
        if self._lock is None:
            yield self._ensure_collection(None)
            return
        try:
            with self._lock.hold(exclusive=write, timeout_s=self.lock_timeout_s):
                generation = self._lock.read_generation()
                collection = self._ensure_collection(generation)
                try:
                    yield collection
                finally:
                    if write:
                        # Close before unlocking: what this process wrote must be on disk, and the
                        # next process to take the lock must open a fresh view of it.
                        self.close()
                        self._lock.bump_generation()
        except TimeoutError:
            raise ArchiveUnavailable(f"archive busy: lock not free after {self.lock_timeout_s:.0f} s",
                                     where=self.where) from None

    def _ensure_collection(self, generation: str | None) -> Any:
        if self._collection is not None and generation == self._generation:
            return self._collection
        self.close()
        try:
            self._client = self._connect()
            collection = self._client.get_or_create_collection(
                COLLECTION, embedding_function=self.embedding, configuration={"hnsw": {"space": "cosine"}},
                metadata={"kernelwright_schema": 1, "embedding": embedding_id(self.embedding)})
        except Exception as exc:  # chromadb raises many types for a damaged folder or a dead server
            self.close()
            raise ArchiveUnavailable(f"cannot open the archive: {type(exc).__name__}: {exc}", where=self.where) from None
        stored = (collection.metadata or {}).get("embedding")
        if stored and stored != embedding_id(self.embedding):
            self.close()
            raise ArchiveUnavailable(f"archive was built with embedding {stored}, not {embedding_id(self.embedding)}",
                                     where=self.where)
        self._collection, self._generation = collection, generation
        return collection

    # -- writing -----------------------------------------------------------------------------------
    def add(self, record: ArchiveRecord) -> AddOutcome:
        return self.add_many([record])[record.id]

    def add_many(self, records: Iterable[ArchiveRecord]) -> dict[str, AddOutcome]:
        """Add or improve records; a known kernel keeps whichever record has the better evidence."""
        best: dict[str, ArchiveRecord] = {}
        for record in records:  # dedup inside the batch first
            if record.id not in best or record.evidence_rank() > best[record.id].evidence_rank():
                best[record.id] = record
        if not best:
            return {}
        ids = list(best)
        vectors = self.embedding([best[i].signature.text() for i in ids])  # outside the lock: it is the slow part
        outcomes: dict[str, AddOutcome] = {}
        with self._session(write=True) as col:
            existing = {i: _parse(doc) for i, doc in zip(*_ids_docs(col.get(ids=ids, include=["documents"])))}
            keep = []
            for i, vec in zip(ids, vectors):
                old = existing.get(i)
                if old is not None and old.evidence_rank() >= best[i].evidence_rank():
                    outcomes[i] = "kept"
                    continue
                outcomes[i] = "replaced" if i in existing else "added"
                keep.append((i, vec))
            if keep:
                col.upsert(ids=[i for i, _ in keep], embeddings=[v for _, v in keep],
                           documents=[json.dumps(best[i].to_dict()) for i, _ in keep],
                           metadatas=[record_metadata(best[i]) for i, _ in keep])
        counts: Counter[str] = Counter(outcomes.values())  # str keys for **: a Mapping's key type is invariant
        self.log.info("archive_add", **counts)
        return outcomes

    # -- reading -----------------------------------------------------------------------------------
    def count(self) -> int:
        with self._session(write=False) as col:
            return int(col.count())

    def get(self, record_id: str) -> ArchiveRecord | None:
        """The record with this id, or with this unique id prefix (>= 6 characters); None if absent."""
        with self._session(write=False) as col:
            ids, docs = _ids_docs(col.get(ids=[record_id], include=["documents"]))
            if not ids and len(record_id) >= 6:
                matches = [i for i in col.get(include=[])["ids"] if i.startswith(record_id)]
                if len(matches) > 1:
                    raise ArchiveUnavailable(f"id prefix {record_id!r} matches {len(matches)} kernels", where=self.where)
                if matches:
                    ids, docs = _ids_docs(col.get(ids=matches, include=["documents"]))
        return _parse(docs[0]) if ids else None

    def entries(self, *, verified_only: bool = False, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """(id, metadata) of the records, newest first, without their sources."""
        with self._session(write=False) as col:
            got = col.get(where={"verified": True} if verified_only else None, include=["metadatas"])
        rows = sorted(zip(got["ids"], got["metadatas"]), key=lambda r: -float(r[1].get("created_at", 0.0)))
        return rows[:limit] if limit else rows

    def records(self, page: int = 500) -> Iterator[ArchiveRecord]:
        with self._session(write=False) as col:
            total, offset = col.count(), 0
            while offset < total:
                for doc in col.get(include=["documents"], limit=page, offset=offset)["documents"]:
                    yield _parse(doc)
                offset += page

    def search(self, query: Any, k: int = 4, *, gpu_arch: str | None = None, diversity: float = 0.3,
               pool: int = 32, verified_only: bool = True, per_run: int = 0) -> list[SearchHit]:
        """Top-k kernels for a ProblemSignature / FunctionalForm / its dict / free text.

        Verified only (by default). The pool to re-rank is the `pool` nearest plus the `pool`
        nearest measured on `gpu_arch`, so a same-arch kernel further away in text still counts.
        `per_run` > 0: at most that many kernels of one run (see ranking.select).
        """
        sig, text = _query_signature(query)
        vector = self.embedding([text])[0]
        with self._session(write=False) as col:
            if self._lock is not None and verified_only:
                pooled = self._pool_local(col, vector, pool, gpu_arch)
            else:
                pooled = self._pool_filtered(col, vector, int(col.count()), pool, gpu_arch, verified_only)
            if not pooled:
                return []
            picked = select(pooled, sig, k, gpu_arch=gpu_arch, diversity=diversity, per_run=per_run)
            ids, docs = _ids_docs(col.get(ids=[c.id for c, _ in picked], include=["documents"]))
        by_id = {i: _parse(d, verify=False) for i, d in zip(ids, docs)}
        return [SearchHit(by_id[c.id], score, c.similarity) for c, score in picked if c.id in by_id]

    def _pool_local(self, col: Any, vector: Any, pool: int, gpu_arch: str | None) -> list[Candidate]:
        """Chroma's ANN for ids (cheap), the verified snapshot for everything else."""
        if self._index is None or self._index_generation != self._generation:
            self._index, self._index_generation = VerifiedIndex.load(col), self._generation
        index = self._index
        if len(index) == 0:
            return []
        # over-fetch: unverified neighbours are dropped here rather than by a slow `where`
        res = col.query(query_embeddings=[vector], n_results=min(index.total, 4 * pool), include=["distances"])
        found = [index.candidate(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0])]
        pooled = {c.id: c for c in found if c is not None}
        pooled = dict(list(pooled.items())[:pool])
        if len(pooled) < pool:  # unverified kernels crowd this neighbourhood: search the verified ones exactly
            pooled.update((c.id, c) for c in index.nearest(vector, pool) if c.id not in pooled)
        if gpu_arch:
            pooled.update((c.id, c) for c in index.nearest(vector, pool, arch=gpu_arch) if c.id not in pooled)
        return list(pooled.values())

    def _pool_filtered(self, col: Any, vector: Any, total: int, pool: int, gpu_arch: str | None,
                       verified_only: bool) -> list[Candidate]:
        """Chroma `where` filters: slower per query, but nothing is held in this process (servers)."""
        base: dict[str, Any] = {"verified": True} if verified_only else {}
        filters: list[Any] = [base or None]
        if gpu_arch:
            filters.append({"$and": [base, {"gpu_arch": gpu_arch}]} if base else {"gpu_arch": gpu_arch})
        pooled: dict[str, Candidate] = {}
        for where in filters:
            res = col.query(query_embeddings=[vector], n_results=min(pool, total), where=where,
                            include=["metadatas", "distances", "embeddings"])
            for i, meta, dist, emb in zip(res["ids"][0], res["metadatas"][0], res["distances"][0], res["embeddings"][0]):
                pooled[i] = Candidate(i, meta, 1.0 - float(dist), emb)
        return list(pooled.values())

    def stats(self) -> dict[str, Any]:
        rows = self.entries()
        metas = [m for _, m in rows]
        verified = [m for m in metas if m.get("verified")]
        speedups = [m["speedup_vs_eager"] for m in verified if "speedup_vs_eager" in m]
        return {"where": self.where, "embedding": embedding_id(self.embedding), "records": len(metas),
                "verified": len(verified), "problems": len({m.get("problem_key") for m in metas}),
                "by_arch": dict(Counter(m.get("gpu_arch") or "unknown" for m in verified)),
                "by_status": dict(Counter(m.get("status") for m in metas)),
                "best_speedup_vs_eager": max(speedups) if speedups else None,
                "runs": len({m.get("run_id") for m in metas if m.get("run_id")})}

    # -- sharing -------------------------------------------------------------------------------
    def export_jsonl(self, path: str | Path) -> int:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        n = 0
        with tmp.open("w") as fh:
            for record in self.records():
                fh.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
                n += 1
        os.replace(tmp, path)  # a half-written export never looks finished
        return n

    def import_jsonl(self, path: str | Path, batch: int = 256) -> dict[str, int]:
        """Counts of added / replaced / kept / invalid lines; invalid lines are skipped with a warning."""
        counts: Counter[str] = Counter()
        pending: list[ArchiveRecord] = []
        try:
            lines = Path(path).open()
        except OSError as exc:
            raise ArchiveUnavailable(f"cannot read {path}: {exc}", where=str(path)) from None
        with lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    pending.append(ArchiveRecord.from_dict(json.loads(line)))
                except (json.JSONDecodeError, RecordError) as exc:
                    counts["invalid"] += 1
                    self.log.warning("archive_import_bad_line", file=str(path), line=lineno, error=str(exc))
                if len(pending) >= batch:
                    counts.update(self.add_many(pending).values())
                    pending = []
        if pending:
            counts.update(self.add_many(pending).values())
        return dict(counts)


def _ids_docs(got: dict[str, Any]) -> tuple[list[str], list[str]]:
    return list(got["ids"]), list(got.get("documents") or [])


def _parse(document: str, *, verify: bool = True) -> ArchiveRecord:
    try:
        return ArchiveRecord.from_dict(json.loads(document), verify=verify)
    except (json.JSONDecodeError, RecordError) as exc:
        raise ArchiveUnavailable(f"damaged record in the archive: {exc}") from None
