"""Compile CUDA with nvcc: content-addressed cache, parallel jobs, timeouts, diagnostics.

Builds run out of process with an explicit environment. The build directory is
keyed by sha256(sources + flags + arch + nvcc version), and is published with an
atomic rename, so concurrent builders of the same source never see half a build.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog

from kernelwright.tools.compile.diagnostics import Diagnostic, KernelResources, parse_diagnostics, parse_resource_usage
from kernelwright.tools.errors import CompileError, KernelwrightError, ToolTimeout, ToolUnavailable
from kernelwright.tools.procenv import scrubbed_env

log = structlog.get_logger(__name__)

DEFAULT_ARCH = "sm_90a"  # the H100/H200 targets; used when no GPU can be asked
_ARCH_RE = re.compile(r"^sm_(\d+)([af]?)$")

# A cache entry's record of its build (command, warnings, resources, log), kept beside the built library.
BUILD_RECORD = "build.json"


@dataclass(frozen=True, slots=True)
class NvccOptions:
    arch: str = DEFAULT_ARCH
    opt_level: int = 3
    std: str = "c++17"
    extra_flags: tuple[str, ...] = ()
    host_flags: tuple[str, ...] = ()
    include_dirs: tuple[str, ...] = ()
    link_flags: tuple[str, ...] = ()
    output: Literal["shared", "object"] = "shared"
    timeout_s: float = 180.0
    resource_usage: bool = True  # -Xptxas -v: registers, smem and spills per kernel
    fast_math: bool = False


@dataclass(frozen=True, slots=True)
class CompileResult:
    artifact: Path
    key: str
    cache_hit: bool
    duration_s: float
    command: tuple[str, ...]
    warnings: tuple[Diagnostic, ...] = ()
    resources: tuple[KernelResources, ...] = ()
    log: str = ""

    def to_dict(self) -> dict:
        return {
            "artifact": str(self.artifact), "key": self.key, "cache_hit": self.cache_hit,
            "duration_s": round(self.duration_s, 4), "command": list(self.command),
            "warnings": [w.to_dict() for w in self.warnings], "resources": [r.to_dict() for r in self.resources],
        }


def arch_flags(arch: str) -> list[str]:
    """`sm_90a` -> the -gencode form, which works for arch-specific targets on every nvcc 12/13."""
    m = _ARCH_RE.match(arch)
    if not m:
        raise CompileError(f"unknown GPU architecture {arch!r}; expected e.g. sm_90a or sm_80",
                           returncode=-1, stderr="", where="nvcc options")
    num, suffix = m.groups()
    return [f"-gencode=arch=compute_{num}{suffix},code=sm_{num}{suffix}"]


def unsupported_arch(arch: str, nvcc: str | None = None) -> str | None:
    """Why nvcc cannot build for `arch` (not of the form sm_90a, or not among the targets this nvcc lists), or
    None when it can. With no nvcc to ask only the form is checked (a build then says nvcc is missing)."""
    m = _ARCH_RE.match(arch)
    if not m:
        return f"{arch!r} is not a GPU architecture; expected e.g. sm_90a or sm_80"
    exe = nvcc or shutil.which("nvcc") or _cuda_home_nvcc()
    listed = _listed_archs(exe) if exe else frozenset()
    if listed and f"sm_{m[1]}" not in listed:
        known = ", ".join(sorted(listed, key=lambda a: int(re.sub(r"\D", "", a))))
        return f"{arch!r} is not a GPU architecture this nvcc can build for (it builds for {known})"
    return None


@functools.lru_cache(maxsize=8)
def _listed_archs(nvcc: str) -> frozenset[str]:
    """The real targets `nvcc --list-gpu-code` names (sm_75, sm_90, ...); empty when it cannot say (old nvcc)."""
    try:
        out = subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True, timeout=60, env=scrubbed_env())
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(re.findall(r"\bsm_\d+\b", out.stdout)) if out.returncode == 0 else frozenset()


def arch_for_capability(major: int, minor: int) -> str:
    """Compute capability -> nvcc target; Hopper gets sm_90a so wgmma/setmaxnreg are usable."""
    return f"sm_{major}{minor}a" if (major, minor) == (9, 0) else f"sm_{major}{minor}"


# A sandbox worker's channel for BuildSettings: the candidate's own load_cuda / load_inline calls take no
# settings (and may build late, in a forward call), so the worker process carries them as these variables.
# worker_env writes them and from_env reads them; kernelwright's config takes two of them as the user's short forms.
WORKER_ENV = {"arch": "KERNELWRIGHT_ARCH", "cache_dir": "KERNELWRIGHT_CACHE_DIR",
               "timeout_s": "KERNELWRIGHT_NVCC_TIMEOUT_S"}


@dataclass(frozen=True, slots=True)
class BuildSettings:
    """How candidates' CUDA is built: the owner of these defaults (kernelwright's [compile] config refers to them).

    None means the builder decides: the visible GPU's arch (DEFAULT_ARCH with none), ~/.cache/kernelwright as
    the cache folder, and each builder's own nvcc time limit (180 s for load_cuda, 600 s for load_inline).
    """

    arch: str | None = None  # nvcc target, e.g. sm_90a
    cache_dir: Path | None = None  # kernelwright's cache folder; builds go in its build/
    timeout_s: float | None = None  # nvcc's limit per compile of a candidate's sources
    fast_inline: bool = True  # candidates' load_inline builds with the fast builder (tools.compile.inline)

    def worker_env(self) -> dict[str, str]:
        """The variables that carry these settings into a sandbox worker (an unset field: none)."""
        values = {"arch": self.arch, "cache_dir": self.cache_dir, "timeout_s": self.timeout_s}
        return {WORKER_ENV[name]: str(value) for name, value in values.items() if value is not None}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BuildSettings:
        """The settings a worker was started with (`worker_env`'s variables; default: this process's environment)."""
        env = os.environ if env is None else env
        arch, cache_dir, timeout_s = (env.get(WORKER_ENV[name]) or None for name in ("arch", "cache_dir", "timeout_s"))
        return cls(arch=arch, cache_dir=Path(cache_dir) if cache_dir else None,
                   timeout_s=float(timeout_s) if timeout_s else None)


def default_cache_dir() -> Path:
    """Where builds are cached: the worker's BuildSettings.cache_dir, else ~/.cache/kernelwright; in its build/."""
    root = BuildSettings.from_env().cache_dir or Path(os.path.expanduser("~")) / ".cache" / "kernelwright"
    return root / "build"


@dataclass
class NvccCompiler:
    """One compiler per run: nvcc path, its version, the cache and the job limit."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    jobs: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    nvcc: str | None = None
    _version: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)
        self.nvcc = self.nvcc or shutil.which("nvcc") or _cuda_home_nvcc()

    # -- public API ---------------------------------------------------------
    def version(self) -> str:
        if self._version is None:
            exe = self._require_nvcc()
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, env=scrubbed_env())
            self._version = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "unknown"
        return self._version

    def cache_key(self, sources: Mapping[str, str], opts: NvccOptions) -> str:
        h = hashlib.sha256()
        h.update(self.version().encode())
        h.update(json.dumps(_opts_for_key(opts), sort_keys=True).encode())
        for name in sorted(sources):
            h.update(b"\0file\0" + name.encode() + b"\0" + sources[name].encode())
        for inc in opts.include_dirs:  # headers the sources pull in (e.g. shims) change builds too
            h.update(_dir_digest(Path(inc)).encode())
        return h.hexdigest()

    def compile(self, source: str | Mapping[str, str], opts: NvccOptions = NvccOptions(),
                *, artifact_name: str = "kernel") -> CompileResult:
        """Build `source` (one .cu text, or {filename: text}) into a shared library or object.

        Raises CompileError (with parsed diagnostics), ToolTimeout or ToolUnavailable.
        """
        sources = {"kernel.cu": source} if isinstance(source, str) else dict(source)
        if not sources:
            raise CompileError("nothing to compile: no sources given", returncode=-1, stderr="")
        started = time.perf_counter()
        key = self.cache_key(sources, opts)
        suffix = ".so" if opts.output == "shared" else ".o"
        final_dir = self.cache_dir / key[:2] / key
        artifact = final_dir / f"{artifact_name}{suffix}"
        if artifact.exists():
            meta = _read_meta(final_dir)
            return CompileResult(artifact, key, True, time.perf_counter() - started, tuple(meta.get("command", [])),
                                 tuple(Diagnostic.from_dict(d) for d in meta.get("warnings", [])),
                                 tuple(KernelResources(**r) for r in meta.get("resources", [])), meta.get("log", ""))
        result = self._build(sources, opts, key, final_dir, artifact_name + suffix)
        return CompileResult(result.artifact, key, False, time.perf_counter() - started, result.command,
                             result.warnings, result.resources, result.log)

    def compile_many(self, items: Sequence[tuple[str | Mapping[str, str], NvccOptions]]) -> list[CompileResult | KernelwrightError]:
        """Build many candidates at once under the job limit; failures come back in place."""
        def one(item: tuple[str | Mapping[str, str], NvccOptions]) -> CompileResult | KernelwrightError:
            try:
                return self.compile(item[0], item[1])
            except KernelwrightError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            return list(pool.map(one, items))

    # -- internals ----------------------------------------------------------
    def _require_nvcc(self) -> str:
        if not self.nvcc:
            raise ToolUnavailable("nvcc not found on PATH or under CUDA_HOME; install the CUDA toolkit", where="nvcc")
        return self.nvcc

    def _build(self, sources: dict[str, str], opts: NvccOptions, key: str, final_dir: Path, artifact_file: str) -> CompileResult:
        exe = self._require_nvcc()
        if why := unsupported_arch(opts.arch, exe):  # nvcc's own message for this names neither file nor our arch
            raise CompileError(why, returncode=-1, stderr="", where="nvcc options")
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=final_dir.parent))
        try:
            for name, text in sources.items():
                (work / name).write_text(text)
            out_path = work / artifact_file
            logs: list[str] = []
            if len(sources) == 1 or opts.output == "object":
                command = self._command(exe, list(sources), opts, out_path, link=opts.output == "shared")
                logs.append(self._run(command, work, opts.timeout_s))
            else:
                command = self._build_parallel(exe, list(sources), opts, out_path, work, logs)
            full_log = "\n".join(logs)
            diags = parse_diagnostics(full_log)
            resources = parse_resource_usage(full_log)
            warnings = tuple(d for d in diags if d.severity == "warning")
            meta = {"command": command, "warnings": [w.to_dict() for w in warnings],
                    "resources": [r.to_dict() for r in resources], "log": full_log[-20000:]}
            (work / BUILD_RECORD).write_text(json.dumps(meta))
            try:
                os.rename(work, final_dir)  # atomic publish; loses the race gracefully
            except OSError:
                shutil.rmtree(work, ignore_errors=True)
            return CompileResult(final_dir / artifact_file, key, False, 0.0, tuple(command), warnings, resources, full_log)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def _build_parallel(self, exe: str, names: list[str], opts: NvccOptions, out_path: Path, work: Path,
                        logs: list[str]) -> list[str]:
        objects = [work / (Path(n).stem + f".{i}.o") for i, n in enumerate(names)]
        commands = [self._command(exe, [n], opts, o, link=False) for n, o in zip(names, objects)]
        with ThreadPoolExecutor(max_workers=min(len(commands), self.jobs)) as pool:
            logs.extend(pool.map(lambda c: self._run(c, work, opts.timeout_s), commands))
        link = [exe, "-shared", *arch_flags(opts.arch), "-o", str(out_path), *map(str, objects), *opts.link_flags]
        logs.append(self._run(link, work, opts.timeout_s))
        return link

    @staticmethod
    def _command(exe: str, inputs: list[str], opts: NvccOptions, out_path: Path, *, link: bool) -> list[str]:
        cmd = [exe, f"-O{opts.opt_level}", f"-std={opts.std}", *arch_flags(opts.arch),
               "-Xcompiler", "-fPIC", "-lineinfo", "--display-error-number"]
        if opts.resource_usage:
            cmd += ["-Xptxas", "-v"]
        if opts.fast_math:
            cmd.append("--use_fast_math")
        for inc in opts.include_dirs:
            cmd += ["-I", inc]
        for flag in opts.host_flags:
            cmd += ["-Xcompiler", flag]
        cmd += list(opts.extra_flags)
        cmd += ["-shared"] if link else ["-c"]
        cmd += ["-o", str(out_path), *inputs]
        if link:
            cmd += list(opts.link_flags)
        return cmd

    @staticmethod
    def _run(command: list[str], cwd: Path, timeout_s: float) -> str:
        # Own process group, so a timeout kills cicc/ptxas/gcc children too.
        proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=scrubbed_env(), start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ToolTimeout(f"nvcc did not finish within {timeout_s:.0f} s", timeout_s=timeout_s, where=" ".join(command[-1:])) from None
        if proc.returncode != 0:
            diags = parse_diagnostics(output)
            errors = [d for d in diags if d.severity == "error"]
            headline = errors[0].render().splitlines()[0] if errors else output.strip().splitlines()[-1:] or ["nvcc failed"]
            raise CompileError(f"compilation failed ({len(errors)} error(s)): {headline if isinstance(headline, str) else headline[0]}",
                               returncode=proc.returncode, stderr=output, diagnostics=diags, where=command[-1])
        return output


def _opts_for_key(opts: NvccOptions) -> dict:
    return {
        "arch": opts.arch, "O": opts.opt_level, "std": opts.std, "extra": list(opts.extra_flags),
        "host": list(opts.host_flags), "inc": list(opts.include_dirs), "link": list(opts.link_flags),
        "out": opts.output, "fast_math": opts.fast_math, "rusage": opts.resource_usage,
    }


def _dir_digest(path: Path) -> str:
    """Cheap identity of an include dir: names, sizes and mtimes of its files."""
    if not path.is_dir():
        return str(path)
    parts = []
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            parts.append(f"{p.relative_to(path)}:{st.st_size}:{int(st.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest() if len(parts) < 2000 else str(path)


def _read_meta(final_dir: Path) -> dict:
    try:
        return json.loads((final_dir / BUILD_RECORD).read_text())
    except (OSError, ValueError):
        return {}


def _cuda_home_nvcc() -> str | None:
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc")
    return None
