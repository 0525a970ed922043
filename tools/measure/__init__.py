"""Measuring a kernel and the card it runs on.

`timing` is the one timing API (CUDA events, L2 flush, a time budget, a trial floor); `ncu` runs Nsight
Compute on a process and parses its counters, and `roofline` places each launch against the card's peaks;
`gpu_info` reads the card's facts and clocks through NVML and builds the `kernelwright env` report.
`run_once` is the small process that external tools wrap (ncu here, compute-sanitizer in the harness):
it loads a candidate and runs its forward a few times. `quiet` keeps one run's builds out of its timed phases;
`gpu_gate` does it across processes that share a GPU (a bench's lanes): timings exclusive, all else shared.
"""
