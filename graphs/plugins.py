"""Plugging user agents into the optimisation graph without editing kernelwright.

A plugin is a node (`def node(state, runtime) -> dict`, like every agent) plus
where it attaches:

- "after_propose": between translate/mutate/repair and the screen + evaluation
  (e.g. a static linter that marks candidates),
- "after_evaluate": between evaluation and profile/select (e.g. an autotuner or a
  sanitizer pass over the verified candidates).

Plugins at the same point run in the order given. Installed packages register
plugins under the entry-point group `kernelwright.agents`; each entry point
names an `AgentPlugin` (or a zero-argument function returning one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from kernelwright.graphs.nodes import NODE_NAMES
from kernelwright.tools.errors import KernelwrightError

ENTRY_POINT_GROUP = "kernelwright.agents"
AttachPoint = Literal["after_propose", "after_evaluate"]
ATTACH_POINTS: tuple[str, ...] = ("after_propose", "after_evaluate")
RESERVED = frozenset(NODE_NAMES)


class PluginError(KernelwrightError):
    kind = "plugin"


@dataclass(frozen=True)
class AgentPlugin:
    name: str
    node: Callable[..., dict[str, Any]]
    attach: AttachPoint

    def validate(self) -> AgentPlugin:
        if self.attach not in ATTACH_POINTS:
            raise PluginError(f"plugin {self.name!r}: attach must be one of {ATTACH_POINTS}, not {self.attach!r}")
        if self.name in RESERVED or not self.name.isidentifier():
            raise PluginError(f"plugin name {self.name!r} is reserved or not an identifier")
        if not callable(self.node):
            raise PluginError(f"plugin {self.name!r}: node is not callable")
        return self


def discover_plugins(found: Callable[[], Iterable[EntryPoint]] | None = None) -> list[AgentPlugin]:
    """Plugins registered by installed packages; a broken one is a PluginError naming it."""
    eps = found() if found is not None else entry_points(group=ENTRY_POINT_GROUP)
    plugins = []
    for ep in eps:
        try:
            obj = ep.load()
            plugin = obj() if callable(obj) and not isinstance(obj, AgentPlugin) else obj
        except Exception as exc:
            raise PluginError(f"entry point {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}",
                              where=ENTRY_POINT_GROUP) from None
        if not isinstance(plugin, AgentPlugin):
            raise PluginError(f"entry point {ep.name!r} gave {type(plugin).__name__}, not an AgentPlugin",
                              where=ENTRY_POINT_GROUP)
        plugins.append(plugin.validate())
    return plugins


def chains(plugins: Sequence[AgentPlugin]) -> dict[str, list[AgentPlugin]]:
    """Plugins grouped by attach point, validated, names unique."""
    seen: set[str] = set()
    grouped: dict[str, list[AgentPlugin]] = {point: [] for point in ATTACH_POINTS}
    for plugin in plugins:
        plugin.validate()
        if plugin.name in seen:
            raise PluginError(f"two plugins named {plugin.name!r}")
        seen.add(plugin.name)
        grouped[plugin.attach].append(plugin)
    return grouped
