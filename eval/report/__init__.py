"""The HTML report of a run: one self-contained file (inline CSS and SVG), readable offline."""

from kernelwright.eval.report.page import render_report, write_report

__all__ = ["render_report", "write_report"]
