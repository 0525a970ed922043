"""What the tools know about a problem before any kernel exists.

A problem is a KernelBench-style file (`Model`, `get_inputs`, `get_init_inputs`) and a candidate a file
defining `ModelNew`: `files` checks both statically and loads them inside a worker, `from_module` turns an
nn.Module plus example inputs into such a file, `inputs` draws the seeded inputs (and the perturbations
the timing loop applies), `shape_scaling` finds an unseen input size, and `functional` traces the Model into
its functional form (a flat list of ATen ops) whose argument values `literals` writes back as Python source
for the translator's prompts and host code.
"""
