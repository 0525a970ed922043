"""The synthetic records the archive tests share (they live in eval/ for the benchmark)."""

from kernelwright.eval.fakes.synthetic_archive import (
                                                       FAMILIES,
                                                       IDEAS,
                                                       kernel_source,
                                                       make_record,
                                                       signature,
                                                       synthetic_records,
)

__all__ = ["FAMILIES", "IDEAS", "kernel_source", "make_record", "signature", "synthetic_records"]
