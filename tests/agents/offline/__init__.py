"""Tests of kernelwright.agents.offline: the rule-based translator and tuner."""
