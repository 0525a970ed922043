"""A synthetic recorded run: what a real one writes, at any size, for the report benchmark and tests.

It has a run record, an event log with node, LLM and tool events and ~3 KB prompts, and candidate folders with
source, metadata, report and some profiles, all written through tools.run_folder, so loading, building and
rendering a report all see a realistic volume (eval/bench/report.py times them at 5,000 candidates).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from kernelwright.agents.run_state import SCREENED_OUT, CandidateStatus
from kernelwright.graphs.nodes import EVALUATE_ONE, MUTATE, TRANSLATE
from kernelwright.tools.run_folder import CandidateMeta, CandidateProfile, RunFolder

REASONS: tuple[tuple[CandidateStatus, str], ...] = (
    ("rejected", "compile_error"), ("rejected", "wrong_output"), ("rejected", "timeout"), ("rejected", "load_error"),
    (SCREENED_OUT, SCREENED_OUT), ("error", "worker_crash"))
PROMPT = ("You are optimising a PyTorch module with a custom CUDA kernel. Problem source follows.\n"
          + "x = torch.relu(x * w + b)  # the reference computation\n" * 60)


def _source(i: int, speed: float) -> str:
    body = "\n".join(f"    float v{j} = x[i * {j + 1}] * {speed:.3f}f;" for j in range(40))
    return (f"import torch.nn as nn\n# candidate {i}\nCUDA_SRC = r'''\n__global__ void k{i}(const float* x, float* y, int n) {{\n"
            f"    int i = blockIdx.x * blockDim.x + threadIdx.x;\n{body}\n}}\n'''\n\n\nclass ModelNew(nn.Module):\n"
            f"    def forward(self, x):\n        return x\n")


def synthetic_profile(speed: float, *, kernel: str = "relu_affine_kernel", label: str = "k",
                      gbps_per_speed: float = 1200.0, flops: float = 2.0e8, dram_bytes: float = 8.0e8) -> dict[str, Any]:
    """A profiler's result for a memory-bound kernel on an H100 (for synthetic runs and test fakes)."""
    gbps = min(3200.0, gbps_per_speed * speed)  # memory-bound: faster kernels move bytes closer to the peak
    seconds = dram_bytes / (gbps * 1e9)
    return {"available": True, "summary": f"{label}: {gbps / 33.5:.0f}% of DRAM bandwidth, memory-bound",
            "kernels": [{"name": kernel, "duration_ns": seconds * 1e9,
                         "roofline": {"arithmetic_intensity_flop_per_byte": flops / dram_bytes,
                                      "achieved_gflops": flops / seconds / 1e9, "achieved_dram_gbps": gbps,
                                      "peak_gflops": 67000.0, "peak_dram_gbps": 3350.0, "bound": "memory"}}]}


def synthetic_run(run_dir: Path, n_candidates: int = 5000, generations: int = 50, seed: int = 0) -> Path:
    """Write a plausible recorded run with `n_candidates` candidates; returns its directory."""
    rng = random.Random(seed)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} is not empty: the synthetic run needs a fresh directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    run = RunFolder(run_dir)
    log = run.event_log(run_dir.name)
    per_gen = max(1, n_candidates // generations)
    passed: list[tuple[str, float]] = []
    failed: list[str] = []
    best: tuple[str, float] | None = None
    log.emit("run_start", resumed=False, pid=0)
    for i in range(n_candidates):
        gen = min(generations - 1, i // per_gen)
        if i % per_gen == 0:
            log.emit("node_start", node=MUTATE if gen else TRANSLATE, node_run=f"n{gen}", step=gen * 10, generation=gen)
            log.emit("node_end", node=MUTATE if gen else TRANSLATE, node_run=f"n{gen}", generation=gen,
                     duration_s=round(rng.uniform(5, 30), 3), candidates=[])
        roll = rng.random()
        if gen == 0 or not passed:
            agent, parents = "translator", []
        elif roll < 0.2 and failed:
            agent, parents = "repair", [rng.choice(failed[-200:])]
        elif roll < 0.4 and len(passed) > 1:
            a, b = rng.sample(passed[-100:], 2)
            agent, parents = "crossover", [a[0], b[0]]
        else:
            agent, parents = "mutator", [max(rng.sample(passed[-100:], min(4, len(passed))), key=lambda p: p[1])[0]]
        ok = rng.random() < 0.55
        speed = round(max(0.2, 0.8 + 1.6 * gen / generations + rng.gauss(0, 0.25)), 4) if ok else 0.0
        source = _source(i, speed)
        temperature = rng.choice((0.2, 0.7, 1.0))
        meta = CandidateMeta(agent=agent, generation=gen, model=rng.choice(("model-a", "model-b")),
                             temperature=temperature, prompt=f"{agent}@v1", parents=tuple(parents),
                             repair_depth=int(agent == "repair"))
        cid, folder = run.store_candidate(source, meta)
        status, reason = ("passed", None) if ok else rng.choice(REASONS)
        report = {"status": status, "reason": reason, "message": "" if ok else f"{reason} in trial 1",
                  "speedup_vs_eager": speed or None, "speedup_vs_compile": round(speed / 1.3, 4) if ok else None,
                  "timing": {"candidate": {"median_ms": 0.1 / max(speed, 0.1), "p20_ms": 0.09, "p80_ms": 0.11, "n_trials": 50},
                             "eager": {"median_ms": 0.1, "p20_ms": 0.099, "p80_ms": 0.101, "n_trials": 50}} if ok else {},
                  "gpu": {"name": "NVIDIA H100 80GB HBM3"}}
        if status != SCREENED_OUT:
            folder.write_report(report)
        tokens_in, tokens_out = rng.randint(2500, 5000), rng.randint(400, 1500)
        log.emit("llm_call", agent=agent if agent != "crossover" else "mutator", node=MUTATE if gen else TRANSLATE,
                 node_run=f"n{gen}", llm_run=f"l{i}", generation=gen, model=meta.model, temperature=temperature,
                 messages=[{"role": "system", "content": "Write CUDA."}, {"role": "human", "content": PROMPT}],
                 response=f"```python\n{source}```", input_tokens=tokens_in, output_tokens=tokens_out,
                 total_tokens=tokens_in + tokens_out, latency_s=round(rng.uniform(2, 40), 3),
                 cost_usd=round((tokens_in * 3 + tokens_out * 15) / 1e6, 6), candidate_id=cid)
        if status != SCREENED_OUT:
            log.emit("tool_call", tool="evaluate", candidate_id=cid, status=status, reason=reason,
                     speedup=speed or None, seconds=round(rng.uniform(1, 4), 3))
        log.emit("node_end", node=EVALUATE_ONE, node_run=f"e{i}", generation=gen, duration_s=1.0,
                 candidates=[{"id": cid, "status": status, "reason": reason, "speedup": speed or None}])
        if ok:
            passed.append((cid, speed))
            if best is None or speed > best[1]:
                best = (cid, speed)
                folder.write_profile(CandidateProfile.from_dict(synthetic_profile(speed)))
        else:
            failed.append(cid)
    log.emit("run_end", status="finished", best_id=best[0] if best else None)
    log.close()
    run.update_info(
        run_id=run_dir.name, problem="synthetic/relu_affine.py", started="2026-01-01T00:00:00+0000",
        finished="2026-01-01T09:00:00+0000", status="finished", settings={"population": 8},
        models=["model-a", "model-b"], best={"id": best[0] if best else None},
        spent={"candidates": n_candidates, "wall_s": 32000.0}, generations_done=generations,
        gpu={"name": "NVIDIA H100 80GB HBM3"})
    return run_dir
