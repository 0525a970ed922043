"""Tests of kernelwright.agents: answer parsing, the critic's replies, the LLM client, the run state."""
