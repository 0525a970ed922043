"""Mutator nodes: rewrite verified parents (mutation or crossover) and repair rejected candidates.

Which parent, and whether to cross two, is drawn from a generator seeded by the
run's seed and generation, so a resumed or repeated run asks the same questions.
"""

from __future__ import annotations

import random
from typing import Any

from langgraph.runtime import Runtime

from kernelwright.agents.context import KContext
from kernelwright.agents.examples import examples_block
from kernelwright.agents.offline_proposer import offline_tune
from kernelwright.agents.proposals import ProposalRequest, propose
from kernelwright.agents.run_state import CandidateRecord, RunState
from kernelwright.agents.translator import translate
from kernelwright.tools.compile.diagnostics import Diagnostic
from kernelwright.tools.problem.files import read_source
from kernelwright.tools.run_folder import CandidateFolder
from kernelwright.tools.verify.code_check import REASON as FORBIDDEN_CODE

# Rejections a rewrite can plausibly fix; integrity verdicts (cheats) and timeouts of the harness itself are not retried.
# forbidden_code is: its message names the line (a build directory made with os.makedirs, nvcc run by subprocess).
REPAIRABLE = {"compile_error", "load_error", "correctness", "wrong_output", "shape_mismatch", "dtype_mismatch",
              "nan_output", "unwritten_output", "crash", "timeout", FORBIDDEN_CODE}
DEFAULT_DIRECTION = "make it faster without changing what it computes"


def mutate(state: RunState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """New candidates from the elite: mostly single-parent rewrites, some crossovers; with no elite, translate again."""
    ctx = runtime.context
    if not ctx.has_llm:
        return offline_tune(state, ctx) if ctx.offline is not None else {}
    population = [pid for pid in state.get("population") or [] if pid in (state.get("candidates") or {})]
    if not population:
        return translate(state, runtime)
    rng = random.Random(f"{ctx.settings.seed}:{state.get('run_id')}:{state.get('generation', 0)}")
    requests = []
    for i in range(ctx.settings.candidates_per_generation):
        first = population[0] if i == 0 else rng.choice(population)  # the best is always mutated once
        if len(population) > 1 and rng.random() < ctx.settings.crossover_rate:
            second = rng.choice([p for p in population if p != first])
            requests.append(_crossover_request(state, ctx, first, second))
        else:
            requests.append(_mutation_request(state, ctx, first))
    return propose(state, ctx, requests)


def _mutation_request(state: RunState, ctx: KContext, parent_id: str) -> ProposalRequest:
    parent = state["candidates"][parent_id]
    prompt = ctx.prompts.get("mutator").render(
        gpu=ctx.settings.gpu_description, problem_source=read_source(state["problem_path"], "problem"),
        parent_source=_source(parent), parent_result=describe_result(parent),
        direction="; ".join(parent.get("directions") or []) or DEFAULT_DIRECTION, examples=examples_block(state, ctx))
    return ProposalRequest(prompt, "mutator", (parent_id,))


def _crossover_request(state: RunState, ctx: KContext, a_id: str, b_id: str) -> ProposalRequest:
    a, b = state["candidates"][a_id], state["candidates"][b_id]
    prompt = ctx.prompts.get("crossover").render(
        gpu=ctx.settings.gpu_description, problem_source=read_source(state["problem_path"], "problem"),
        parent_a=_source(a), result_a=describe_result(a),
        parent_b=_source(b), result_b=describe_result(b),
        direction="; ".join((a.get("directions") or []) + (b.get("directions") or [])) or DEFAULT_DIRECTION)
    return ProposalRequest(prompt, "crossover", (a_id, b_id))


def repairable(record: CandidateRecord, max_depth: int) -> bool:
    return (record.get("status") in ("rejected", "error") and record.get("reason") in REPAIRABLE
            and not record.get("repair_tried") and int(record.get("repair_depth", 0)) < max_depth)


def repair(state: RunState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Ask for a fixed version of each repairable rejected candidate, with the harness's diagnostics."""
    ctx = runtime.context
    candidates = state.get("candidates") or {}
    todo = [cid for cid, r in candidates.items() if repairable(r, ctx.settings.repair_rounds)]
    todo = todo[: ctx.settings.candidates_per_generation]
    requests = []
    for cid in todo:
        record = candidates[cid]
        report = _report(record)
        prompt = ctx.prompts.get("repair").render(
            gpu=ctx.settings.gpu_description, problem_source=read_source(state["problem_path"], "problem"),
            candidate_source=_source(record),
            failure=f"{record.get('reason')}: {report.get('message') or ''}".strip(),
            diagnostics=diagnostics_text(report))
        requests.append(ProposalRequest(prompt, "repair", (cid,), repair_depth=int(record.get("repair_depth", 0)) + 1,
                                        temperature=min(ctx.settings.temperatures)))
    update = propose(state, ctx, requests)
    update["candidates"].update({cid: {"repair_tried": True} for cid in todo})
    return update


def describe_result(record: CandidateRecord) -> str:
    text = f"verified, {record.get('speedup_vs_eager') or 0:.2f}x vs eager"
    if record.get("speedup_vs_compile"):
        text += f", {record['speedup_vs_compile']:.2f}x vs torch.compile"
    if record.get("profile_summary"):
        text += f"; profile: {record['profile_summary']}"
    return text


def diagnostics_text(report: dict[str, Any], limit: int = 12) -> str:
    """The compiler's diagnostics, or the failing trial's numbers, in a few lines."""
    lines: list[str] = []
    error = report.get("error") or {}
    for diag in (error.get("details") or {}).get("diagnostics") or error.get("diagnostics") or []:
        lines.append(Diagnostic.from_dict(diag).headline())
    for finding in (error.get("details") or {}).get("findings") or []:  # forbidden_code: each construct, its line
        lines.append(str(finding.get("message", "")))
    for trial in report.get("trials") or []:
        for out in trial.get("outputs") or []:
            if not out.get("passed", True):
                lines.append(f"trial {trial.get('index', '?')} output {out.get('index', '?')}: "
                             + ", ".join(f"{k}={v}" for k, v in out.items() if k not in ("passed", "index")))
    if not lines and error.get("message"):
        lines.append(str(error["message"]))
    return "\n".join(lines[:limit]) or "(none)"


def _source(record: CandidateRecord) -> str:
    return CandidateFolder.of_source(record["source_path"]).read_source()


def _report(record: CandidateRecord) -> dict[str, Any]:
    """The harness's report of an evaluated candidate ({} before its evaluation)."""
    report = CandidateFolder.of_source(record["source_path"]).read_report() if record.get("report_path") else None
    return report.to_dict() if report is not None else {}
