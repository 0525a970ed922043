"""Just enough SVG to draw the report's charts: axes (linear or log), ticks, marks, escaped text.

Everything returns strings; every piece of text passes through `esc`, so a kernel
name or an LLM's words can never become markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: float) -> str:
    """A tick label: short, no trailing zeros."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e4 or magnitude < 1e-2:
        return f"{value:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count)
    step = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if raw <= step * mult:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    return [10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            if lo <= 10.0 ** e <= hi]


@dataclass(frozen=True)
class Axes:
    """Data -> pixel mapping for one plot area; margins hold tick labels and axis titles."""

    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    log_x: bool = False
    log_y: bool = False
    left: int = 56
    right: int = 16
    top: int = 14
    bottom: int = 42
    band: int = 0  # a strip between the plot area and the x tick labels, for marks that have no y value
    band_label: str = ""

    @property
    def plot_bottom(self) -> float:
        return self.height - self.bottom - self.band

    def band_y(self, fraction: float) -> float:
        """A y inside the strip (0: its top, 1: its bottom)."""
        top, bottom = self.plot_bottom + 8, self.plot_bottom + self.band - 2
        return round(top + (bottom - top) * min(1.0, max(0.0, fraction)), 1)

    def _scale(self, v: float, lo: float, hi: float, log: bool) -> float:
        if log:
            v, lo, hi = (math.log10(max(x, 1e-300)) for x in (v, lo, hi))
        return 0.0 if hi == lo else (v - lo) / (hi - lo)

    def px(self, x: float) -> float:
        return round(self.left + self._scale(x, self.x0, self.x1, self.log_x) * (self.width - self.left - self.right), 1)

    def py(self, y: float) -> float:
        inner = self.plot_bottom - self.top
        return round(self.top + (1.0 - self._scale(y, self.y0, self.y1, self.log_y)) * inner, 1)

    def frame(self, x_title: str, y_title: str, x_ticks: Sequence[float] | None = None,
              y_ticks: Sequence[float] | None = None, x_labels: Sequence[str] | None = None) -> str:
        xt = list(x_ticks) if x_ticks is not None else (
            log_ticks(self.x0, self.x1) if self.log_x else nice_ticks(self.x0, self.x1))
        yt = list(y_ticks) if y_ticks is not None else (
            log_ticks(self.y0, self.y1) if self.log_y else nice_ticks(self.y0, self.y1))
        bottom, inner_width = self.plot_bottom, self.width - self.left - self.right
        parts = [f'<rect class="plot-bg" x="{self.left}" y="{self.top}" width="{inner_width}" '
                 f'height="{bottom - self.top}"/>']
        if self.band:
            parts.append(f'<rect class="band-bg" x="{self.left}" y="{bottom + 6}" width="{inner_width}" '
                         f'height="{self.band - 6}"/><text class="band-label" x="{self.left - 6}" '
                         f'y="{self.band_y(0.5) + 4}" text-anchor="end">{esc(self.band_label)}</text>')
        labels_y = bottom + self.band
        for i, t in enumerate(xt):
            x = self.px(t)
            label = x_labels[i] if x_labels is not None and i < len(x_labels) else fmt(t)
            parts.append(f'<line class="grid" x1="{x}" y1="{self.top}" x2="{x}" y2="{bottom}"/>'
                         f'<text class="tick" x="{x}" y="{labels_y + 14}" text-anchor="middle">{esc(label)}</text>')
        for t in yt:
            y = self.py(t)
            parts.append(f'<line class="grid" x1="{self.left}" y1="{y}" x2="{self.width - self.right}" y2="{y}"/>'
                         f'<text class="tick" x="{self.left - 6}" y="{y + 4}" text-anchor="end">{esc(fmt(t))}</text>')
        parts.append(f'<text class="axis-title" x="{(self.left + self.width - self.right) / 2}" y="{labels_y + 31}" '
                     f'text-anchor="middle">{esc(x_title)}</text>')
        mid = (self.top + bottom) / 2
        parts.append(f'<text class="axis-title" x="14" y="{mid}" text-anchor="middle" '
                     f'transform="rotate(-90 14 {mid})">{esc(y_title)}</text>')
        return "".join(parts)


def document(width: int, height: int, body: Iterable[str], label: str, css_class: str = "chart") -> str:
    return (f'<svg class="{css_class}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{esc(label)}">{"".join(body)}</svg>')


def circle(x: float, y: float, r: float, cls: str, title: str | None = None) -> str:
    tip = f"<title>{esc(title)}</title>" if title else ""
    return f'<circle class="{cls}" cx="{x}" cy="{y}" r="{r}">{tip}</circle>'


def polyline(points: Sequence[tuple[float, float]], cls: str) -> str:
    return f'<polyline class="{cls}" points="{" ".join(f"{x},{y}" for x, y in points)}"/>'


def legend(items: Sequence[tuple[str, ...]], x: float, y: float, shape: str = "circle") -> str:
    """Legend entries (css class, label[, shape]) in a row starting at (x, y); shape: circle, square or line."""
    parts, cursor = [], x
    for cls, label, *own in items:
        kind = own[0] if own else shape
        mark = (f'<circle class="{cls}" cx="{cursor + 5}" cy="{y - 4}" r="5"/>' if kind == "circle"
                else f'<rect class="{cls}" x="{cursor + 2}" y="{y - 7}" width="6" height="6"/>' if kind == "square"
                else f'<line class="{cls}" x1="{cursor}" y1="{y - 4}" x2="{cursor + 18}" y2="{y - 4}"/>')
        width = 20 if kind == "line" else 10
        parts.append(f'{mark}<text class="legend" x="{cursor + width + 4}" y="{y}">{esc(label)}</text>')
        cursor += width + 12 + 7 * len(label)
    return "".join(parts)
