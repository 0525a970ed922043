"""Header directories for fast inline builds: the light torch shim, the binding support, a compat dir.

Stock `load_inline` pays most of its time parsing `torch/extension.h` (all of
ATen's ~2,000 operator headers, the autograd and nn frontends, pybind11) twice
per extension. Candidate kernels use a sliver of that: `at::Tensor`, a few
factories, `TORCH_CHECK`, `AT_DISPATCH_*`. The shim directory goes first on the
include path and answers `<torch/extension.h>`, `<torch/torch.h>`,
`<torch/all.h>`, `<torch/types.h>` and `<ATen/ATen.h>` with a light prelude,
and shadows `<ATen/cuda/CUDAContext.h>`, `<ATen/cuda/Exceptions.h>` and
`<ATen/DeviceGuard.h>` with copies that skip their heaviest includes.

Most of the light prelude is taken from the installed torch itself, so it keeps
in step with the torch version: the generated per-operator headers
(`ATen/ops/empty.h`, ...) are copied with their heavy includes (`ATen/Context.h`,
`ATen/DeviceGuard.h`, ...) dropped, which keeps the inline wrappers and makes
`at::empty(...)` cost almost nothing to parse. The generated directory is keyed
by torch's version and the shim's own sources and published atomically, so it is
written once and its mtimes (part of the nvcc cache key) stay stable.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

GENERATOR_VERSION = "2"

# Functional ATen operators whose `at::` wrappers the light prelude provides.
# Factories first (almost every candidate allocates its output), then the ops
# LLM-written host code tends to call around its kernels.
LIGHT_OPS: tuple[str, ...] = (
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "arange", "rand", "randn", "rand_like", "randn_like", "randint", "scalar_tensor",
    "add", "sub", "mul", "div", "neg", "abs", "exp", "log", "sqrt", "rsqrt", "pow", "clamp", "maximum", "minimum",
    "relu", "sigmoid", "tanh", "where", "sum", "mean", "amax", "amin", "argmax",
    "matmul", "mm", "bmm", "addmm", "transpose", "permute", "reshape", "flatten", "squeeze", "unsqueeze",
    "narrow", "cat", "stack", "softmax", "allclose",
)
# Includes kept when copying a generated operator header: headers from these
# trees are light; everything else (ATen/Context.h, ATen/Functions.h, the
# per-operator wrapper headers) is dropped.
_KEEP_INCLUDE = re.compile(r"^(c10/|ATen/core/|torch/headeronly/|ATen/ops/\w+_ops\.h$|[\w.]+$)")
# Headers whose includes of these (measured: ATen/Context.h ~2 s, c10/util/Logging.h ~1 s per
# translation unit) are dropped; the rest of them is kept verbatim.
_HEAVY = ("ATen/Context.h", "c10/util/Logging.h")
# (torch header, where its light copy goes under shim/, which includes to drop: None = keep only light ones)
_STRIPPED: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("ATen/TensorOperators.h", "kw_inline/ops/TensorOperators.h", None),
    # Shadows: LLM candidates include these directly; the copies skip ATen/Context.h.
    # (AT_CUDA_DRIVER_CHECK needs at::globalContext() and so the full-header rung.)
    ("ATen/cuda/CUDAContext.h", "ATen/cuda/CUDAContext.h", _HEAVY),
    ("ATen/cuda/Exceptions.h", "ATen/cuda/Exceptions.h", _HEAVY),
)
_INCLUDE_LINE = re.compile(r"^\s*#\s*include\s*[<\"]([^>\"]+)[>\"]")

_CUDA_MACROS_REL = "c10/cuda/impl/cuda_cmake_macros.h"
_CUDA_MACROS_TEXT = "#pragma once\n\n#define C10_CUDA_BUILD_SHARED_LIBS\n"


@dataclass(frozen=True, slots=True)
class TorchPaths:
    """Where the installed torch keeps its headers and libraries, and its build facts."""

    version: str
    include_dirs: tuple[str, ...]
    lib_dir: str
    python_include: str
    cxx11_abi: int
    has_cuda_macros: bool
    has_cuda_libs: bool

    @property
    def identity(self) -> str:
        """What an extension built against this torch/Python depends on (goes into the sources' hash)."""
        return (f"torch {self.version} abi{self.cxx11_abi} python {sys.version_info.major}.{sys.version_info.minor} "
                f"include {self.include_dirs[0]}")


def torch_paths() -> TorchPaths:
    root = Path(torch.__file__).parent
    include = root / "include"
    lib_dir = root / "lib"
    return TorchPaths(
        version=str(torch.__version__),
        include_dirs=(str(include), str(include / "torch" / "csrc" / "api" / "include")),
        lib_dir=str(lib_dir),
        python_include=sysconfig.get_paths()["include"],
        cxx11_abi=int(bool(torch._C._GLIBCXX_USE_CXX11_ABI)),
        has_cuda_macros=(include / _CUDA_MACROS_REL).is_file(),
        has_cuda_libs=(lib_dir / "libc10_cuda.so").is_file(),
    )


@dataclass(frozen=True, slots=True)
class HeaderDirs:
    """The include dirs an inline build adds in front of torch's own."""

    shim: Path  # light torch/*.h and ATen/ATen.h; only on the path of light builds
    support: Path  # kw_inline/abi.h and kw_inline/trampoline.h; on every build's path
    compat: Path | None  # c10/cuda/impl/cuda_cmake_macros.h when this torch lacks it (CPU wheels)

    def light(self) -> tuple[str, ...]:
        return (str(self.shim), *self.full())

    def full(self) -> tuple[str, ...]:
        return (str(self.support),) + ((str(self.compat),) if self.compat else ())


def prepare_header_dirs(root: Path, paths: TorchPaths) -> HeaderDirs:
    """Generate (once) and return the header dirs for this torch under `root`."""
    static = _static_files()
    h = hashlib.sha256(f"{GENERATOR_VERSION}\0{paths.version}\0{paths.include_dirs[0]}\0{LIGHT_OPS}".encode())
    for rel in sorted(static):
        h.update(rel.encode() + b"\0" + static[rel].encode())
    base = Path(root) / f"inline-headers-{h.hexdigest()[:16]}"
    if not (base / "ready").exists():
        _publish(base, lambda tmp: _generate(tmp, paths, static))
    compat = base / "compat" if not paths.has_cuda_macros else None
    return HeaderDirs(shim=base / "shim", support=base / "support", compat=compat)


def _static_files() -> dict[str, str]:
    """Packaged header sources -> their path inside the generated tree."""
    pkg = resources.files("kernelwright.tools.compile.inline")
    files = {
        "support/kw_inline/abi.h": (pkg / "kw_abi.h").read_text(),
        "support/kw_inline/trampoline.h": (pkg / "kw_trampoline.h").read_text(),
        "shim/kw_inline/light_aten.h": (pkg / "light_aten.h").read_text(),
        "shim/kw_inline/device_of.h": (pkg / "light_device_of.h").read_text(),
    }
    for name in ("extension.h", "torch.h", "all.h"):
        files[f"shim/torch/{name}"] = (pkg / "shim" / "torch" / name).read_text()
    return files


def _generate(out: Path, paths: TorchPaths, static: dict[str, str]) -> None:
    for rel, text in static.items():
        _write(out / rel, text)
    include = Path(paths.include_dirs[0])
    api_include = Path(paths.include_dirs[1])
    present = [op for op in LIGHT_OPS if (include / "ATen" / "ops" / f"{op}.h").is_file()]
    for op in present:
        _write(out / "shim" / "kw_inline" / "ops" / f"{op}.h", strip_includes((include / "ATen" / "ops" / f"{op}.h").read_text()))
    for src, dst, drop in _STRIPPED:
        if (include / src).is_file():
            _write(out / "shim" / dst, strip_includes((include / src).read_text(), drop))
    _write(out / "shim" / "kw_inline" / "light_ops.h",
           "#pragma once\n// generated: light at:: operator wrappers\n"
           + "".join(f"#include <kw_inline/ops/{op}.h>\n" for op in present))
    types_h = api_include / "torch" / "types.h"
    _write(out / "shim" / "torch" / "types.h",
           "#pragma once\n#include <kw_inline/light_aten.h>\n" + strip_includes(types_h.read_text()))
    _write(out / "shim" / "ATen" / "ATen.h", "#pragma once\n#include <kw_inline/light_aten.h>\n")
    # at::DeviceGuard & co. as the real header has them, device_of without the IListRef overload.
    _write(out / "shim" / "ATen" / "DeviceGuard.h",
           "#pragma once\n#include <ATen/core/Tensor.h>\n#include <c10/core/DeviceGuard.h>\n"
           "#include <kw_inline/device_of.h>\n")
    _write(out / "compat" / _CUDA_MACROS_REL, _CUDA_MACROS_TEXT)
    _write(out / "ready", paths.version + "\n")


def strip_includes(text: str, drop: tuple[str, ...] | None = None) -> str:
    """Drop heavy #includes from a torch header, keeping the rest verbatim.

    With `drop=None` only light includes survive (_KEEP_INCLUDE); otherwise exactly
    the headers in `drop` go. Dropped lines become comments, so line numbers stay.
    """
    out = []
    for line in text.splitlines():
        m = _INCLUDE_LINE.match(line)
        heavy = m is not None and (m.group(1) in drop if drop is not None else not _KEEP_INCLUDE.match(m.group(1)))
        if heavy:
            out.append(f"// kw-dropped: {line.strip()}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _publish(final: Path, fill) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        fill(tmp)
        try:
            os.rename(tmp, final)  # atomic; a concurrent builder may have won
        except OSError:
            if not (final / "ready").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
