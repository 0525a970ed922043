"""kernelwright.eval: the suite and benchmarks that measure kernelwright, and the report that shows a run.

    suite/, suite_manifest.py   the benchmark suite: problem files (data, loaded by path) and their manifest
    ablation/, problems/        more problem files the benchmarks load (data)
    bench/      the benchmarks, each `python -m kernelwright.eval.bench.<name>` (see BENCHMARKS.md);
                measured/ keeps the figures and rows they produced
    report/     a run folder read into typed records (run_data) and its self-contained HTML report
    fakes/      stand-ins that tests and benchmarks share: a replaying OpenAI-compatible server,
                synthetic archive records, a synthetic recorded run
"""
