"""Separate processes that import problem and candidate code, run it, and never let it reach the harness.

`pool` starts, talks to, times out and kills workers (scrubbed environment, own process group, host
memory bounded through `resources`), over framed messages (`protocol`) that carry only data. `worker` is
the entry point (`python -m kernelwright.tools.sandbox.worker`) with two roles: the `reference_worker`
runs the problem's Model and holds the `judge`, and never imports candidate code; the `candidate_worker`
imports the candidate, times it over rotating input sets (`timed_sets`) and shares its outputs with the
judge by reference (`tensor_share`, `tensor_wire`), while `guard`, `background` and `libraries` catch
patched harness functions, work left running, and which shared libraries are the candidate's own.
"""
