"""kernelwright.tools: plain typed functions that compile, verify, time and profile CUDA candidates.

No LangGraph, LangChain, pydantic or Chroma here: this package runs alone on a GPU box with torch,
nvidia-ml-py and structlog. Its parts, each importing only the shared basics and the parts listed above it:

    errors, procenv, source_hash, run_folder   shared basics: the error hierarchy, child-process
                environments, a candidate's id, the run folder's files
    problem/    problem and candidate files: static checks, loading, inputs, the functional form
    compile/    CUDA source to callable code: nvcc, the raw form, fast load_inline
    verify/     the judging rules: output comparison, precision, fingerprints, floors, kernel traces
    measure/    timing, Nsight Compute and the roofline, GPU facts, the process external tools wrap
    sandbox/    worker processes that import problem and candidate code, run it and judge its outputs
    harness/    one candidate through all of the above: its report, verdicts, memcheck, prebuilding

raw_kernel.py and module_problem.py are stable import paths kept for files that outlive a version
(candidates, generated problem files): each re-exports from its part and says why.
"""
