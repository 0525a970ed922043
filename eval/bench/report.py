"""Report scale benchmark: a synthetic N-candidate run, its report built, then rendered in headless Chromium.

    python -m kernelwright.eval.bench.report --candidates 5000 [--out FILE.json] [--keep DIR]

The synthetic run (eval/fakes/synthetic_run.py) has what a real one records, so loading,
building and rendering all see a realistic volume. Render time is the page's own
mark (two animation frames after the last element, i.e. laid out and painted), in
ms after navigation start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kernelwright.eval.fakes.synthetic_run import synthetic_run
from kernelwright.tools.run_folder import RunFolder


def measure(run_dir: Path, repeats: int = 3) -> dict[str, Any]:
    from kernelwright.eval.report import write_report
    from kernelwright.eval.report.browser import headless_chromium, open_and_wait_rendered

    started = time.perf_counter()
    page = write_report(run_dir)
    build_s = time.perf_counter() - started
    renders, dom, load = [], [], []
    with headless_chromium() as driver:
        for _ in range(repeats):
            renders.append(open_and_wait_rendered(driver, page))
            nav = driver.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                        "return [n.domContentLoadedEventEnd, n.loadEventEnd];")
            dom.append(float(nav[0]))
            load.append(float(nav[1]))
        counts = driver.execute_script("return [document.querySelectorAll('svg circle').length,"
                                       "document.querySelectorAll('tr').length];")
    return {"candidates": len(RunFolder(run_dir).candidates()), "report_bytes": page.stat().st_size,
            "build_s": round(build_s, 3), "render_ms_median": round(statistics.median(renders), 1),
            "render_ms": [round(r, 1) for r in renders], "dom_content_loaded_ms": round(statistics.median(dom), 1),
            "load_event_ms": round(statistics.median(load), 1), "svg_circles": counts[0], "table_rows": counts[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--generations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the synthetic run here (default: a temporary directory)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.keep or Path(tmp) / "synthetic-run"
        started = time.perf_counter()
        synthetic_run(run_dir, args.candidates, args.generations)
        result = {"synthesis_s": round(time.perf_counter() - started, 2), **measure(run_dir, args.repeats)}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
