"""One candidate against one problem, end to end: the harness the rest of kernelwright calls.

`evaluate` runs the static checks, starts a reference and a candidate sandbox worker, verifies, checks
integrity, times, and judges what was timed, returning one JSON-safe record per candidate (`results`);
`verdicts` turns the judge's comparisons into that record's verdict. `sanitizer` is the optional
compute-sanitizer memcheck pass, and `precompile` builds many candidates at once on CPU workers before
any GPU time is spent on them.
"""
