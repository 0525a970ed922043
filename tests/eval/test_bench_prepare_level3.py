"""Candidate preparation for whole networks (KernelBench level 3): a Model whose weights exceed the preparing
child's memory is traced with uninitialised weights instead of failing, and the level-3 dev split translates."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kernelwright.agents.offline import OfflineUnsupported, propose
from kernelwright.agents.offline.trace import load_problem, weight_bytes
from kernelwright.eval.bench.harness_prepare import candidate_path, prepare_one
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.problem.inputs import unfilled_problem_inputs
from support.paths import KERNELBENCH

WIDE_MLP = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, x):
        return self.net(x)

def get_inputs():
    return [torch.rand(4, SIZES[0])]

def get_init_inputs():
    return [SIZES]

SIZES = [1 << 14, 1 << 15, 1 << 10]  # 2.2 GB of weights, over the 1 GB budget below
'''


def test_weights_over_the_budget_are_traced_uninitialised(tmp_path: Path) -> None:
    problem = tmp_path / "wide.py"
    problem.write_text(WIDE_MLP)
    entry = prepare_one(problem, tmp_path / "c", budget_bytes=1 << 30, timeout_s=300)
    assert entry.kind == "offline", entry.why
    assert "weights traced uninitialised" in entry.why and entry.peak_rss_bytes < 1 << 30
    wide = candidate_path(tmp_path / "c", "wide").read_text()
    check_source(candidate_path(tmp_path / "c", "wide"), "candidate")
    # the candidate a real build gives: the same file, at a size that fits
    small = tmp_path / "small.py"
    small.write_text(WIDE_MLP.replace("SIZES = [1 << 14, 1 << 15, 1 << 10]", "SIZES = [64, 128, 16]"))
    real = propose(small)[0].source
    assert propose(small, lazy_weights=True)[0].source == real
    assert wide.count("_kw_lib.kw_launch_") == real.count("_kw_lib.kw_launch_")


@pytest.mark.slow
def test_level3_of_the_dev_split_translates(tmp_path: Path) -> None:
    """Every level-3 problem translates, in this process, in seconds (the child's lazy inputs and weights)."""
    level3 = KERNELBENCH / "level3"
    if not level3.is_dir():
        pytest.skip(f"KernelBench dev split not found at {level3}")
    problems = sorted(level3.glob("*.py"))
    assert len(problems) == 40
    failed: dict[str, str] = {}
    for problem in problems:
        started = time.perf_counter()
        _, module = load_problem(problem)
        try:
            with unfilled_problem_inputs(problem):
                propose(problem, lazy_weights=(weight_bytes(module) or 0) > 1 << 30, variants=("fused",))
        except OfflineUnsupported as exc:
            failed[problem.stem] = exc.message
        assert time.perf_counter() - started < 60, problem.stem  # the recurrent ones took 1.5-5 minutes
    assert not failed, failed
