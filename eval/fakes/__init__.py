"""Stand-ins for what a run talks to or leaves behind, shared by tests, benchmarks and scripted GPU runs.

`replay_server` is a local OpenAI-compatible chat server that replays scripted answers, so the real
langchain-openai client runs over real HTTP with fixed answers (`python -m kernelwright.eval.fakes.replay_server`);
`synthetic_archive` makes realistic archive records (ops, shapes, ideas, GPUs); `synthetic_run` writes a
plausible recorded run of any size through tools.run_folder.
"""
