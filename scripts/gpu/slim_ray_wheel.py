"""Repack a ray wheel without what kernelwright never loads, so it fits the device's 64 MiB carry (79 MB -> ~38 MB).

    python3 scripts/gpu/slim_ray_wheel.py .whl/ray-*.whl      # rewrites the wheel in place

Dropped: the Java jars, the dashboard's web client, and the libraries on top of Ray Core (rllib, data, serve, tune,
train, llm, air); their RECORD lines go too, so pip installs the rest as a normal wheel. Ray Core (ray.init, tasks,
actors, `ray start`) keeps working: checked with the cp311 wheel here.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

DROP = ("ray/jars/", "ray/dashboard/client/", "ray/rllib/", "ray/data/", "ray/serve/", "ray/tune/", "ray/train/",
        "ray/llm/", "ray/air/")


def slim(wheel: Path) -> tuple[int, int]:
    before = wheel.stat().st_size
    tmp = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.startswith(DROP):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                kept = [line for line in data.decode().splitlines() if not line.startswith(DROP)]
                data = ("\n".join(kept) + "\n").encode()
            dst.writestr(info, data)
    tmp.replace(wheel)
    return before, wheel.stat().st_size


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        old, new = slim(Path(arg))
        print(f"{arg}: {old / 1e6:.1f} MB -> {new / 1e6:.1f} MB")
