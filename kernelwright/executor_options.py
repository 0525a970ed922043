"""The `--executor` and `--address` flags of `run` and `bench`: their help, and the config keys they set
([executor] kind and address, kernelwright.config; the executors are graphs.executors')."""

from __future__ import annotations

from typing import Any

EXECUTOR_HELP = ("where builds and evaluations run: local (this machine's GPUs) or ray (a Ray cluster: CPU tasks build, "
                 "GPU actors evaluate; pip install 'kernelwright\\[ray]'); default: the config's executor.kind, local")
ADDRESS_HELP = ("--executor ray: the cluster to join (auto, HOST:6379, ray://HOST:10001); default: the config's "
                "executor.address, else RAY_ADDRESS, else Ray started on this machine")


def executor_overrides(executor: str | None, address: str | None) -> dict[str, Any]:
    """load_config overrides for the flags (None: the config's)."""
    return {"executor.kind": executor, "executor.address": address}
