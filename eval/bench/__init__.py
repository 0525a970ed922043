"""kernelwright's benchmarks: each module is a command, `python -m kernelwright.eval.bench.<name>`.

`compile` times the raw form against fast and stock load_inline; `harness` runs the harness at KernelBench
scale (its candidates from `harness_prepare`, passthrough ones from `passthrough_candidate` where the
translator writes none, its rows and summary kept by `harness_table`); `offline` runs the offline translator on
the suite; `archive` measures the kernel archive's insert and query times and `archive_ablation` whether it
shortens a run (the counting in `ablation_experiment`); `report` builds and renders a large run's report.
`gpu_split` spreads a benchmark over the GPUs of one host and `memory_sampler` records peak host and GPU
memory. `scaling` runs `kernelwright bench` and an agent run on 1, 2, 4, ... GPUs, local and on Ray, and checks the
verdicts agree (its rates, efficiency and verdict check in `scaling_table`). Figures and how they were measured: eval/BENCHMARKS.md.
"""
