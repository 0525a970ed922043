"""The tuner's search logic with fake evaluators (CPU): it keeps only passed candidates, spends at most its
budget, never evaluates the same source twice, and climbs towards faster settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernelwright.agents.offline import propose
from kernelwright.agents.offline.propose import trace_all
from kernelwright.agents.offline.space import TuneDim, TuneSpace
from kernelwright.agents.offline.tune import tune
from support.offline import FIXTURES

PROBLEM = FIXTURES / "problems" / "linear_softmax.py"  # linear + softmax: an elementwise-free plan with tunables


@pytest.fixture(scope="module")
def traced():
    return trace_all(PROBLEM)


def _defines(path: Path) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define KW_(\w+) (\d+)", path.read_text())}


class FakeEvaluator:
    """Scores a candidate from its #defines: faster with more threads per row; rejects RPB 8 and uncached rows."""

    def __init__(self, reject_rpb8: bool = True):
        self.calls: list[Path] = []
        self.reject_rpb8 = reject_rpb8

    def __call__(self, path: Path) -> dict:
        self.calls.append(path)
        d = _defines(path)
        if self.reject_rpb8 and any((k.endswith("_RPB") and v == 8) or (k.endswith("_CACHED") and v == 0)
                                    for k, v in d.items()):
            return {"status": "rejected", "reason": "wrong_output", "speedup_vs_eager": None}
        tpr = max((v for k, v in d.items() if k.endswith("_TPR")), default=0)  # the aten variant has none
        speed = 1.0 + tpr / 1024
        return {"status": "passed", "speedup_vs_eager": speed, "timing": {"candidate": {"median_ms": 1.0 / speed}}}


def test_tuner_keeps_only_passed_and_respects_budget(traced, tmp_path: Path) -> None:
    fake = FakeEvaluator()
    result = tune(PROBLEM, fake, budget=10, out_dir=tmp_path, seed=3, traced=traced)
    assert result.evaluations <= 10 and len(fake.calls) == result.evaluations
    assert result.best is not None and result.best.passed
    assert all(t.passed for t in result.history if t.speedup_vs_eager is not None)
    assert max(t.score() for t in result.history if t.passed) == result.best.score()
    texts = [p.read_text() for p in fake.calls]
    assert len(set(texts)) == len(texts), "the same source was evaluated twice"
    rejected = [t for t in result.history if t.status == "rejected"]
    assert rejected, "the fake rejects the uncached fused_scalar variant; the search must have met it"
    assert all(t is not result.best for t in rejected)
    assert "_RPB 8" not in Path(result.best.path).read_text() and "_CACHED 0" not in Path(result.best.path).read_text()


def test_tuner_climbs_to_the_fastest_setting(traced, tmp_path: Path) -> None:
    result = tune(PROBLEM, FakeEvaluator(reject_rpb8=False), budget=16, out_dir=tmp_path, seed=0, traced=traced)
    best_tpr = max(v for k, v in _defines(Path(result.best.path)).items() if k.endswith("_TPR"))
    assert best_tpr == 64  # the row has 48 elements: 64 threads is the largest setting the space offers
    assert {t.phase for t in result.history} >= {"variant"}


def test_tuner_with_everything_rejected_returns_no_best(traced, tmp_path: Path) -> None:
    result = tune(PROBLEM, lambda p: {"status": "rejected", "reason": "wrong_output"}, budget=6, out_dir=tmp_path,
                  traced=traced)
    assert result.best is None
    assert 0 < result.evaluations <= 6


def test_tuner_survives_an_evaluator_that_raises(traced, tmp_path: Path) -> None:
    calls = []

    def flaky(path: Path) -> dict:
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("worker died")
        return {"status": "passed", "speedup_vs_eager": 1.1}

    result = tune(PROBLEM, flaky, budget=4, out_dir=tmp_path, traced=traced)
    assert result.history[0].status == "error" and "worker died" in (result.history[0].reason or "")
    assert result.best is not None and result.best.passed


def test_space_sampling_and_neighbours_stay_in_the_space() -> None:
    import random

    space = TuneSpace((TuneDim("k1.BLOCK", (128, 256, 512), 256), TuneDim("k1.VEC", (1, 2, 4), 4)))
    rng = random.Random(0)
    for _ in range(20):
        sample = space.sample(rng)
        assert sample["k1.BLOCK"] in (128, 256, 512) and sample["k1.VEC"] in (1, 2, 4)
    neighbours = space.neighbours({"k1.BLOCK": 256, "k1.VEC": 4})
    assert {"k1.BLOCK": 128, "k1.VEC": 4} in neighbours and {"k1.BLOCK": 512, "k1.VEC": 4} in neighbours
    assert {"k1.BLOCK": 256, "k1.VEC": 2} in neighbours and len(neighbours) == 3
    assert space.size() == 9


def test_params_reach_the_generated_source(traced) -> None:
    fused = next(c for c in propose(PROBLEM, traced=traced) if c.variant == "fused")
    name = next(d.name for d in fused.space.dims if d.name.endswith(".TPR"))
    other = next(c for c in propose(PROBLEM, params={name: 32}, traced=traced) if c.variant == "fused")
    step = name.split(".")[0]
    assert f"#define KW_{step}_TPR 32" in other.source
    assert other.source != fused.source or fused.params[name] == 32
