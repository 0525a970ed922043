"""What several test modules share, imported as a package (`from support.graph_fakes import ...`).

`paths`: where the tests' data lives; `graph_fakes`: scripted chat models and a fake evaluator for graph
runs; `graph_run`: a graph run in its own process (the kill-and-resume test); `recorded_run`, `report_runs`:
recorded CPU runs for the trace and report tests; `offline`: suite and fixture problems for the offline
translator's tests; `archive`: archive records. pyproject's `pythonpath = ["tests"]` puts this package on
sys.path.
"""
