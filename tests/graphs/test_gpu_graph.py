"""On a GPU: the whole agent graph with a scripted LLM (replay server over HTTP) and the real harness.

The script makes the translator propose one kernel that does not compile and one
that computes the wrong thing; the repairer (seeing nvcc's diagnostics and the
failing trial) answers with working kernels, the critic reads the profile, and
the mutator proposes a variant. The run must end with a kernel the harness
verified, faster than eager.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernelwright.agents.context import RunSettings
from kernelwright.agents.llm import ModelSettings
from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
from kernelwright.run import RunBudget, optimize
from support.graph_fakes import CRITIQUE_ASKS, SCREEN_ASKS
from support.paths import PROBLEMS, RELU_CANDIDATE

pytestmark = pytest.mark.gpu
PROBLEM = PROBLEMS / "relu_affine.py"


def fenced(source: str) -> str:
    return "```python\n" + source + "```"


def test_scripted_llm_run_reaches_a_verified_speedup(tmp_path: Path) -> None:
    good = RELU_CANDIDATE.read_text()
    broken = good.replace("fmaxf(v.x, 0.f)", "fmaxf(v.x, 0.f) + undefined_name", 1)
    wrong = good.replace("* 2.f + 1.f;\n        v.y", "* 2.f;\n        v.y", 1)  # forgets the +1 on a quarter
    fixed_b = good.replace("int threads = 256;", "int threads = 512;")
    mutated = good.replace("if (blocks > 132 * 16) blocks = 132 * 16;", "if (blocks > 132 * 8) blocks = 132 * 8;")
    assert len({good, broken, wrong, fixed_b, mutated}) == 5
    rules = [
        ReplayRule(fenced(broken), when="Operations to implement"),
        ReplayRule(fenced(wrong), when="Operations to implement"),
        ReplayRule('{"passed": true, "defect": ""}', when=SCREEN_ASKS, repeat=True),
        ReplayRule(fenced(good), when="undefined_name"),  # the repair of the broken build sees nvcc's diagnostic
        ReplayRule(fenced(fixed_b), when="Why it was rejected"),  # the repair of the wrong kernel
        ReplayRule('{"verdict": "memory-bound", "directions": ["fewer, fuller blocks"]}', when=CRITIQUE_ASKS, repeat=True),
        ReplayRule(fenced(mutated), when="Change it along this direction", repeat=True),
    ]
    with ReplayServer(rules) as server:
        result = optimize(PROBLEM, runs_dir=tmp_path, run_id="gpu-scripted",
                          settings=RunSettings(generations=2, candidates_per_generation=2, repair_rounds=1,
                                               crossover_rate=0.0, eval_concurrency=2),
                          model=ModelSettings(model="replay", base_url=server.base_url, max_retries=0), offline=False,
                          budget=RunBudget(candidates=20))
    records = list(result.state["candidates"].values())
    summary = {r["agent"] + ":" + r["id"][:8]: (r["status"], r.get("reason"), r.get("speedup_vs_eager"),
                                                 r.get("speedup_vs_compile")) for r in records}
    print("scripted run:", json.dumps(summary, indent=1))
    reasons = sorted(r.get("reason") or "" for r in records if r["status"] == "rejected")
    assert reasons[:1] == ["compile_error"] and ("wrong_output" in reasons or "unwritten_output" in reasons), summary
    assert any(r["agent"] == "repair" and r["status"] == "passed" for r in records), summary
    best = result.best
    assert best is not None and best["status"] == "passed" and best["speedup_vs_eager"] > 1.0, summary
    profiled = [r for r in records if r.get("profile_summary")]
    assert profiled, "the generation's best was not profiled"
    print(f"best: {best['agent']} {best['speedup_vs_eager']:.2f}x vs eager, "
          f"{(best.get('speedup_vs_compile') or 0):.2f}x vs torch.compile; profile: {profiled[0]['profile_summary'][:160]}")
