"""Every offline candidate for every suite problem (and the fixtures) passes the static pre-check (no
forbidden_code), compiles with real nvcc, imports, binds its launchers, and builds a ModelNew whose parameters
equal the Model's under the same seed.

The CUDA of all candidates is built first in parallel (the content-addressed cache), then each candidate
file is imported in-process (load_cuda hits that cache). Measured on the 2-core CI box: ~40 s to
propose the 46-problem suite, ~2 min to compile its ~110 candidates.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from kernelwright.agents.offline import OfflineUnsupported, propose
from kernelwright.tools.compile.nvcc import NvccCompiler, default_cache_dir
from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER
from kernelwright.tools.problem.files import check_source, import_file
from kernelwright.tools.verify.code_check import check_code
from support.offline import build_options_of, cuda_of, fixture_problems, suite_problems

pytestmark = [pytest.mark.nvcc, pytest.mark.slow, pytest.mark.timeout(1800)]  # ~4 min on 2 busy cores
PROBLEMS = suite_problems() + fixture_problems()
ARCH = "sm_90a"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """{problem: (candidates, compile results)} for everything, compiled once with two parallel jobs."""
    cache = tmp_path_factory.mktemp("offline-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("KERNELWRIGHT_CACHE_DIR", str(cache))  # load_cuda in the imported candidates uses this cache
    mp.setenv("KERNELWRIGHT_ARCH", ARCH)
    proposals: dict[Path, object] = {}
    items = []
    for problem in PROBLEMS:
        try:
            cands = propose(problem)
        except OfflineUnsupported as exc:
            proposals[problem] = exc
            continue
        proposals[problem] = cands
        items += [(cuda_of(c.source) + _ERROR_HELPER, build_options_of(c.source, ARCH)) for c in cands]
    compiler = NvccCompiler(cache_dir=default_cache_dir(), jobs=max(2, os.cpu_count() or 2))
    results = iter(compiler.compile_many(items))
    out = {p: (v, [next(results) for _ in v]) if isinstance(v, list) else (v, []) for p, v in proposals.items()}
    yield out, tmp_path_factory.mktemp("offline-candidates")
    mp.undo()



@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_candidates_compile_import_and_share_parameters(problem: Path, built) -> None:
    table, out_dir = built
    proposals, results = table[problem]
    if isinstance(proposals, OfflineUnsupported):
        pytest.fail(f"no candidate: {proposals.message} (ops: {proposals.ops})")
    refused = {c.variant: check_code(c.source).message() for c in proposals if check_code(c.source).forbidden}
    assert not refused, f"the pre-check refuses honest candidates: {refused}"
    for cand, result in zip(proposals, results):
        assert hasattr(result, "artifact"), f"{cand.variant}: {result}\n{getattr(result, 'stderr', '')[-3000:]}"
    prob = import_file(check_source(problem, "problem"), f"kw_test_problem_{problem.stem}")
    init = prob.get_init_inputs()
    torch.manual_seed(42)
    ref = prob.Model(*init)
    ref_state = {k: v.clone() for k, v in ref.state_dict().items()}
    for cand in proposals:
        path = cand.write(out_dir / f"{problem.stem}_{cand.variant}.py")
        module = import_file(check_source(path, "candidate"), f"kw_test_cand_{problem.stem}_{cand.variant}")
        for launcher in re.findall(r"'(kw_launch_\w+)':", cand.source):
            assert callable(getattr(module._kw_lib, launcher)), launcher
        torch.manual_seed(42)
        new = module.ModelNew(*init)
        new_state = new.state_dict()
        for key, value in ref_state.items():
            assert torch.equal(new_state[f"kw_ref.{key}"], value), f"{cand.variant}: parameter {key} differs"
