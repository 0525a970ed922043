"""The offline translator: rule-based PyTorch -> CUDA candidates and a parametric tuner.

Used when no LLM is configured, and as seeds for the LLM's population. Plain functions
(no langgraph/langchain): trace -> plan -> CUDA + ModelNew per variant -> tune with real timings.
"""

from kernelwright.agents.offline.propose import VARIANTS, GeneratedCandidate, OfflineUnsupported, propose
from kernelwright.agents.offline.space import TuneDim, TuneSpace

__all__ = ["VARIANTS", "GeneratedCandidate", "OfflineUnsupported", "TuneDim", "TuneSpace", "propose"]
