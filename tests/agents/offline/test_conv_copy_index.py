"""The implicit-GEMM conv's input copy (agents/offline/codegen_conv.py, kw_conv_copy_in) takes each destination
element's source from kw_conv_copy_source: the source offset, or a zero for a padded channel or a sample the zero
insertion adds. Its text (CONV_COPY_INDEX) runs here as host C++ over every element of small copies and must
agree with the copy's definition written in Python: plain copies (no insertion, the shortcut) and zero-inserted
ones in 1-, 2- and 3-D, with padded channels."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kernelwright.agents.offline.codegen_conv import CONV_COPY_INDEX

# (used channels, padded channels, source (d, h, w), zero-insertion strides (d, h, w))
CASES = [
    (3, 4, (1, 5, 7), (1, 1, 1)),  # 2-D, a plain copy with a padded channel
    (2, 2, (3, 4, 5), (1, 1, 1)),  # 3-D, plain
    (2, 3, (1, 1, 9), (1, 1, 3)),  # 1-D with zero insertion
    (3, 4, (1, 4, 5), (1, 2, 3)),  # 2-D, different strides per dimension
    (1, 2, (3, 3, 2), (2, 3, 2)),  # 3-D, every dimension inserted
]


def _expected(used: int, channels: int, src: tuple[int, int, int], z: tuple[int, int, int]) -> list[int]:
    """Destination (channel, spatial) in order -> the source offset or -1, from the definition: the destination
    is the source with zd-1, zh-1, zw-1 zeros between neighbouring samples, channels past `used` all zeros."""
    sd, sh, sw = src
    zd, zh, zw = z
    dd, dh, dw = ((s - 1) * k + 1 for s, k in zip(src, z))
    out = []
    for r in range(channels):
        for zi in range(dd):
            for y in range(dh):
                for x in range(dw):
                    on_lattice = zi % zd == 0 and y % zh == 0 and x % zw == 0
                    out.append(r * sd * sh * sw + ((zi // zd) * sh + y // zh) * sw + x // zw
                               if r < used and on_lattice else -1)
    return out


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a host C++ compiler")
@pytest.mark.parametrize("used, channels, src, z", CASES)
def test_each_destination_element_takes_its_source_or_a_zero(tmp_path: Path, used: int, channels: int,
                                                             src: tuple[int, int, int], z: tuple[int, int, int]) -> None:
    dd, dh, dw = ((s - 1) * k + 1 for s, k in zip(src, z))
    program = tmp_path / "copy_index.cpp"
    program.write_text(f"""#include <cstdio>
#define __host__
#define __device__
#define __forceinline__ inline
{CONV_COPY_INDEX}
int main() {{
    KwConvCopyIn m{{1, 1, {used}, {channels}, {src[0]}, {src[1]}, {src[2]}, {dd}, {dh}, {dw}, {z[0]}, {z[1]}, {z[2]}}};
    for (long long r = 0; r < m.channels; ++r)
        for (long long c = 0; c < m.dd * m.dh * m.dw; ++c) std::printf("%lld\\n", kw_conv_copy_source(m, r, c));
    return 0;
}}
""")
    subprocess.run(["g++", "-O1", "-o", str(tmp_path / "copy_index"), str(program)], check=True, capture_output=True)
    got = subprocess.run([str(tmp_path / "copy_index")], check=True, capture_output=True, text=True).stdout.split()
    assert [int(v) for v in got] == _expected(used, channels, src, z)
