"""A fast, drop-in replacement for torch.utils.cpp_extension.load_inline (see DESIGN.md).

    from kernelwright.tools.compile.inline import fast_load_inline, fast_load_inline_installed

    mod = fast_load_inline(name="relu", cpp_sources=cpp, cuda_sources=cu, functions=["relu_cuda"])
    mod.relu_cuda(x); mod.build_info.path      # "light" | "full" | "stock"

    with fast_load_inline_installed():          # candidates calling torch's load_inline get ours
        candidate = importlib.import_module(...)
"""

from kernelwright.tools.compile.inline.loader import (
    InlineBuild,
    InlineBuilder,
    InlineBuildInfo,
    InlineModule,
    fast_load_inline,
)
from kernelwright.tools.compile.inline.patch import (
    Installation,
    fast_load_inline_installed,
    install_fast_load_inline,
    uninstall_fast_load_inline,
)

__all__ = [
    "InlineBuild", "InlineBuildInfo", "InlineBuilder", "InlineModule", "Installation", "fast_load_inline",
    "fast_load_inline_installed", "install_fast_load_inline", "uninstall_fast_load_inline",
]
