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


def relevance(c: Candidate, query: ProblemSignature | None, gpu_arch: str | None, w: RankWeights = RankWeights()) -> float:
    meta = c.metadata
    score = w.text * c.similarity
    if query is not None:
        score += w.ops * jaccard(query.op_set(), split_set(meta.get("ops"), "|"))
        qd = query.dtypes()
        if qd:
            score += w.dtype * jaccard(qd, split_set(meta.get("dtypes"), "|"))
        if meta.get("problem_key") == query.key():
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
    same_problem = a.metadata.get("problem_key") == b.metadata.get("problem_key")
    ideas = jaccard(split_set(a.metadata.get("techniques"), ","), split_set(b.metadata.get("techniques"), ","))
    if same_problem:
        return ideas
    cos = float(np.dot(a.embedding, b.embedding) /
                (np.linalg.norm(a.embedding) * np.linalg.norm(b.embedding) + 1e-12))
    return 0.5 * max(cos, 0.0) + 0.5 * ideas


def select(candidates: Sequence[Candidate], query: ProblemSignature | None, k: int, *, gpu_arch: str | None = None,
           diversity: float = 0.3, weights: RankWeights = RankWeights(),
           duplicate: float = 0.95) -> list[tuple[Candidate, float]]:
    """Up to k (candidate, relevance) pairs; diversity 0 = pure relevance, 1 = pure novelty (MMR).

    With diversity > 0 a near copy of a picked kernel (redundancy >= `duplicate`: same problem,
    same techniques) waits until nothing else is left, so k examples are never k copies of one idea.
    """
    scored = sorted(((c, relevance(c, query, gpu_arch, weights)) for c in candidates), key=lambda x: -x[1])
    if diversity <= 0.0:
        return scored[:k]
    lam = 1.0 - min(diversity, 1.0)
    picked: list[tuple[Candidate, float]] = []
    rest = list(scored)
    while rest and len(picked) < k:
        best_i, best_val, best_is_copy = 0, -math.inf, True
        for i, (c, rel) in enumerate(rest):
            penalty = max((redundancy(c, p) for p, _ in picked), default=0.0)
            is_copy = penalty >= duplicate
            val = lam * rel - (1.0 - lam) * penalty
            if (best_is_copy and not is_copy) or (is_copy == best_is_copy and val > best_val):
                best_i, best_val, best_is_copy = i, val, is_copy
        picked.append(rest.pop(best_i))
    return picked
