"""Tests of kernelwright.eval: the suite, the benchmarks' bookkeeping and the HTML report."""
