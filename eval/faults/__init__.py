"""The fault-injection suite: one hostile or faulty candidate (or injected fault) per case, each checked for
containment (the evaluation or run goes on, with the right typed reason) and for lost work.

    python -m kernelwright.eval.faults [--json] [--only NAME ...]

Cases that need a GPU say so and do not run on a machine without one (registry.py lists them all).
"""
