"""Tests of kernelwright.graphs: the optimisation graph, its events, resume, plugins, the harness evaluator."""
