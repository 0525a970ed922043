"""Re-ranking of the archive's nearest neighbours: relevance, then diversity (MMR).

Chroma returns a pool of nearest records by text embedding; this module scores them with
what the embedding does not see (op-set overlap, exact problem, same GPU architecture,
measured speedup) and then picks k by maximal marginal relevance, so the prompt gets
different ideas rather than k copies of one kernel. Pure functions over flat metadata.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernelwright.memory.records import ProblemSignature


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    metadata: Mapping[str, Any]
    similarity: float  # cosine similarity of the text embeddings, in [-1, 1]
    embedding: np.ndarray


@dataclass(frozen=True, slots=True)
class RankWeights:
    text: float = 0.6
    ops: float = 0.3
    dtype: float = 0.1
    exact_problem: float = 0.2
    same_arch: float = 0.15
    same_major: float = 0.05
    speedup: float = 0.05  # at most, for a kernel >= 8x faster than eager


def split_set(value: Any, sep: str) -> frozenset[str]:
    return frozenset(v for v in str(value or "").split(sep) if v)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class QueryFeatures:
    """What relevance needs of the query, computed once per search (its key is a sha256)."""

    ops: frozenset[str]
    dtypes: frozenset[str]
    key: str

    @classmethod
    def of(cls, query: ProblemSignature | None) -> QueryFeatures | None:
        return None if query is None else cls(query.op_set(), query.dtypes(), query.key())


def relevance(c: Candidate, query: ProblemSignature | QueryFeatures | None, gpu_arch: str | None,
              w: RankWeights = RankWeights()) -> float:
    meta = c.metadata
    score = w.text * c.similarity
    q = QueryFeatures.of(query) if isinstance(query, ProblemSignature) else query
    if q is not None:
        score += w.ops * jaccard(q.ops, split_set(meta.get("ops"), "|"))
        if q.dtypes:
            score += w.dtype * jaccard(q.dtypes, split_set(meta.get("dtypes"), "|"))
        if meta.get("problem_key") == q.key:
            score += w.exact_problem
    arch = meta.get("gpu_arch") or ""
    if gpu_arch and arch:
        if arch == gpu_arch:
            score += w.same_arch
        elif arch[:4] == gpu_arch[:4]:  # sm_8x vs sm_86: the same major generation
            score += w.same_major
    speedup = meta.get("speedup_vs_eager")
    if isinstance(speedup, (int, float)) and speedup > 1.0:
        score += w.speedup * min(math.log2(speedup), 3.0) / 3.0
    return score


def redundancy(a: Candidate, b: Candidate) -> float:
    """How much `a` repeats `b`: the same problem solved the same way is a copy."""
    return _Features.of([a, b]).redundancy(0, 1)


@dataclass(frozen=True)
class _Features:
    """Per-candidate values redundancy needs, computed once per selection (not per pair)."""

    keys: list[Any]
    ideas: list[frozenset[str]]
    unit: np.ndarray  # unit-length embeddings, one row per candidate

    @classmethod
    def of(cls, cands: Sequence[Candidate]) -> _Features:
        vecs = np.asarray([np.asarray(c.embedding, dtype=np.float32) for c in cands]).reshape(len(cands), -1)
        unit = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return cls([c.metadata.get("problem_key") for c in cands],
                   [split_set(c.metadata.get("techniques"), ",") for c in cands], unit)

    def redundancy(self, i: int, j: int) -> float:
        ideas = jaccard(self.ideas[i], self.ideas[j])
        if self.keys[i] == self.keys[j]:
            return ideas
        return 0.5 * max(float(self.unit[i] @ self.unit[j]), 0.0) + 0.5 * ideas


def select(candidates: Sequence[Candidate], query: ProblemSignature | None, k: int, *, gpu_arch: str | None = None,
           diversity: float = 0.3, weights: RankWeights = RankWeights(),
           duplicate: float = 0.95, per_run: int = 0) -> list[tuple[Candidate, float]]:
    """Up to k (candidate, relevance) pairs; diversity 0 = pure relevance, 1 = pure novelty (MMR).

    With diversity > 0 a near copy of a picked kernel (redundancy >= `duplicate`: same problem,
    same techniques) waits until nothing else is left, so k examples are never k copies of one idea.
    `per_run` > 0 keeps at most that many of one run's kernels (the most relevant), so one long run
    cannot fill all k places.
    """
    q = QueryFeatures.of(query)
    scored = sorted(((c, relevance(c, q, gpu_arch, weights)) for c in candidates), key=lambda x: -x[1])
    if per_run > 0:
        scored = _cap_per_run(scored, per_run)
    if diversity <= 0.0 or not scored:
        return scored[:k]
    lam = 1.0 - min(diversity, 1.0)
    feats = _Features.of([c for c, _ in scored])
    penalty = [0.0] * len(scored)  # max redundancy with anything picked so far, updated per pick
    rest = list(range(len(scored)))
    picked: list[int] = []
    while rest and len(picked) < k:
        def rank(i: int) -> tuple[bool, float]:
            return (penalty[i] < duplicate, lam * scored[i][1] - (1.0 - lam) * penalty[i])

        best = max(rest, key=rank)
        rest.remove(best)
        picked.append(best)
        for i in rest:
            penalty[i] = max(penalty[i], feats.redundancy(i, best))
    return [scored[i] for i in picked]


def _cap_per_run(scored: list[tuple[Candidate, float]], per_run: int) -> list[tuple[Candidate, float]]:
    """`scored` (best first) with at most `per_run` entries of each run id; records without one stand alone."""
    taken: dict[str, int] = {}
    out = []
    for cand, score in scored:
        run = str(cand.metadata.get("run_id") or "") or cand.id
        if taken.get(run, 0) < per_run:
            taken[run] = taken.get(run, 0) + 1
            out.append((cand, score))
    return out
