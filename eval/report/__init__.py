"""A run shown to people: its folder read into typed records, and its HTML report.

`run_data` reads a run folder (through tools.run_folder) into typed records, tolerant of live, killed and
old runs; the CLI's `runs` and `trace` views read it too. `page` assembles one self-contained HTML file
(inline CSS and SVG, readable offline) from `charts`, `tables` and `profile_table`, drawn with `svg` and
labelled by `labels`; `bench_page` does the same for a `kernelwright bench` (its table and per-level speedup
distributions). `browser` opens a page in headless Chromium for the report's tests and benchmark.
"""

from kernelwright.eval.report.page import render_report, write_report

__all__ = ["render_report", "write_report"]
