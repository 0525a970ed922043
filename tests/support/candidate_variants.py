"""Distinct copies of one candidate, laid out as a run's candidates folder (candidates/<id>/candidate.py): each
builds on its own (its text differs), so a test sees several evaluations without writing several kernels."""

from __future__ import annotations

from pathlib import Path

from support.paths import RELU_CANDIDATE


def candidate_variants(root: Path, n: int, source: Path = RELU_CANDIDATE) -> list[Path]:
    out = []
    for i in range(n):
        folder = root / "candidates" / f"g0-c{i}"
        folder.mkdir(parents=True)
        (folder / "candidate.py").write_text(source.read_text() + f"\n# variant {i}\n")
        out.append(folder / "candidate.py")
    return out
