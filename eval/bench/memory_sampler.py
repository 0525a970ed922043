"""Peak host and GPU memory of a process tree, sampled by a thread while something runs.

Host: RSS and PSS summed over the tree (tools.sandbox.resources.tree_memory; RSS counts shared libraries once per
process, PSS shares them out, so both are reported). GPU: NVML's per-process used memory for the tree's
pids, and the whole devices' used memory. Where NVML is missing the GPU figures are None, with why; where
NVML lists processes but none of the tree's pids (another pid namespace), the tree's GPU figure is None.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass
from typing import Any

from kernelwright.tools.errors import ToolUnavailable
from kernelwright.tools.sandbox.resources import descendants, tree_memory


@dataclass(frozen=True, slots=True)
class MemoryPeaks:
    rss_bytes: int
    pss_bytes: int
    processes: int  # the most processes the tree had at once
    samples: int
    gpu_tree_bytes: int | None = None
    gpu_device_used_bytes: int | None = None  # every visible device's used memory, other users included
    gpu_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TreeSampler:
    """`with TreeSampler() as s: ...` then `s.peaks()`; samples the tree of `root` (default: this process)
    every `interval_s` seconds, once at the start and once at the end."""

    def __init__(self, root: int | None = None, *, interval_s: float = 0.05, gpu: bool = True):
        self.root = os.getpid() if root is None else root
        self.interval_s = interval_s
        self.gpu = gpu
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rss = self._pss = self._procs = self._samples = 0
        self._gpu_tree: int | None = None
        self._gpu_device: int | None = None
        self._gpu_matched = False
        self._gpu_listed = False
        self._gpu_note: str | None = None if gpu else "GPU sampling off"
        self._devices: list[Any] = []

    def __enter__(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._run, name="kw-memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def peaks(self) -> MemoryPeaks:
        tree_gpu = self._gpu_tree
        note = self._gpu_note
        if tree_gpu is not None and not self._gpu_matched and self._gpu_listed:
            tree_gpu, note = None, "NVML listed GPU processes but none of this tree's pids (another pid namespace?)"
        return MemoryPeaks(self._rss, self._pss, self._procs, self._samples, tree_gpu, self._gpu_device, note)

    def _run(self) -> None:
        nvml = self._open_nvml()
        try:
            while True:
                self._sample_host()
                if nvml is not None:
                    self._sample_gpu(nvml)
                if self._stop.wait(self.interval_s):
                    break
            self._sample_host()  # the last state too: a sample taken after the stop was asked for
        finally:
            if nvml is not None:
                nvml.__exit__(None, None, None)

    def _sample_host(self) -> None:
        mem = tree_memory(self.root)
        self._rss, self._pss = max(self._rss, mem.rss_bytes), max(self._pss, mem.pss_bytes)
        self._procs = max(self._procs, mem.processes)
        self._samples += 1

    def _open_nvml(self) -> Any:
        if not self.gpu:
            return None
        from kernelwright.tools.measure.gpu_info import Nvml

        try:
            nvml = Nvml().__enter__()
            self._devices = [nvml.handle(i) for i in range(nvml.call("nvmlDeviceGetCount"))]
        except ToolUnavailable as exc:
            self._gpu_note = exc.message
            return None
        self._gpu_tree = self._gpu_device = 0
        return nvml

    def _sample_gpu(self, nvml: Any) -> None:
        pids = {self.root, *descendants(self.root)}
        tree = used = 0
        for handle in self._devices:
            info = nvml.optional("nvmlDeviceGetMemoryInfo", handle)
            used += int(getattr(info, "used", 0) or 0)
            for proc in nvml.optional("nvmlDeviceGetComputeRunningProcesses", handle) or []:
                self._gpu_listed = True
                if proc.pid in pids:
                    self._gpu_matched = True
                    tree += int(proc.usedGpuMemory or 0)  # None where the driver does not say
        self._gpu_tree = max(self._gpu_tree or 0, tree)
        self._gpu_device = max(self._gpu_device or 0, used)
