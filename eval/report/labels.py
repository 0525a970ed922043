"""Place short text labels next to chart points so that no two collide.

Two passes. First, each label (in priority order) takes a spot right next to its
point (eight directions) if the spot's box hits nothing: no other label, no point,
no fixed obstacle, and stays inside the plot. Then the labels of crowded points
line up in a column beside their cluster, in the points' vertical order, each with
a leader line that crosses no label and no other leader. A label that finds no
room is left off (the caller lists every point in a table anyway).
Text width is estimated from the character count, generously, since the page is
laid out by the reader's browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CHAR_WIDTH_EM = 0.72  # wider than DejaVu Sans Bold digits (0.70 em): overestimating only spaces labels out
NEAR = 3.0  # px between a point's edge and a label placed right next to it
DIRECTIONS = ((1, 0), (-1, 0), (1, -1), (1, 1), (0, -1), (0, 1), (-1, -1), (-1, 1))
CLUSTER_GAP = 60.0  # px: crowded points closer than this in x share a column of labels
COLUMN_STEP = 6.0  # px: how far a blocked column moves outwards before trying again


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float

    def hits(self, other: Box, gap: float = 1.0) -> bool:
        return not (self.x1 + gap <= other.x0 or other.x1 + gap <= self.x0
                    or self.y1 + gap <= other.y0 or other.y1 + gap <= self.y0)

    def inside(self, outer: Box) -> bool:
        return outer.x0 <= self.x0 and self.x1 <= outer.x1 and outer.y0 <= self.y0 and self.y1 <= outer.y1

    def nearest(self, x: float, y: float) -> tuple[float, float]:
        return min(max(x, self.x0), self.x1), min(max(y, self.y0), self.y1)


@dataclass(frozen=True)
class Placed:
    x: float  # the label's centre (draw with text-anchor middle, dominant-baseline central)
    y: float
    box: Box
    leader: bool  # moved away from its point: draw a line to it


def text_size(text: str, font_px: float) -> tuple[float, float]:
    return len(text) * font_px * CHAR_WIDTH_EM + 2.0, font_px + 2.0


Segment = tuple[float, float, float, float]


def _cross(a: Segment, b: Segment) -> bool:
    """Whether two segments cross (touching ends do not count)."""
    def side(x0: float, y0: float, x1: float, y1: float, x: float, y: float) -> float:
        return (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
    d1, d2 = side(*a, b[0], b[1]), side(*a, b[2], b[3])
    d3, d4 = side(*b, a[0], a[1]), side(*b, a[2], a[3])
    return d1 * d2 < 0 and d3 * d4 < 0


def _through(seg: Segment, box: Box) -> bool:
    """Whether a segment passes through a box (its ends inside, or crossing an edge)."""
    if any(box.x0 < x < box.x1 and box.y0 < y < box.y1 for x, y in ((seg[0], seg[1]), (seg[2], seg[3]))):
        return True
    edges = ((box.x0, box.y0, box.x1, box.y0), (box.x1, box.y0, box.x1, box.y1),
             (box.x1, box.y1, box.x0, box.y1), (box.x0, box.y1, box.x0, box.y0))
    return any(_cross(seg, e) for e in edges)


def _next_to(px: float, py: float, w: float, h: float, point_r: float) -> list[Box]:
    out = []
    for dx, dy in DIRECTIONS:
        cx = px + dx * (point_r + NEAR + w / 2)
        cy = py + dy * (point_r + NEAR + h / 2) if dx == 0 else py + dy * (point_r + NEAR)
        out.append(Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return out


def _clusters(indices: list[int], points: Sequence[tuple[float, float]]) -> list[list[int]]:
    """Groups of points whose x positions lie within CLUSTER_GAP of the next."""
    groups: list[list[int]] = []
    for i in sorted(indices, key=lambda i: points[i][0]):
        if groups and points[i][0] - points[groups[-1][-1]][0] <= CLUSTER_GAP:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _spread(ideal: list[float], h: float, top: float, bottom: float) -> list[float]:
    """Centres as near the ideal ones as possible, at least h + 2 apart, inside [top, bottom]."""
    ys: list[float] = []
    for y in ideal:
        ys.append(max(y, ys[-1] + h + 2) if ys else y)
    shift = max(0.0, ys[-1] + h / 2 - bottom) if ys else 0.0
    ys = [y - shift for y in ys]
    low = top + h / 2
    if ys and ys[0] < low:  # too many to fit: start at the top (some may then fall outside and be dropped)
        ys = [low + i * (h + 2) for i in range(len(ys))]
    return ys


def _column(group: list[int], points: Sequence[tuple[float, float]], sizes: list[tuple[float, float]],
            area: Box, point_r: float, blocked: list[Box], labels: list[Box]) -> dict[int, Box]:
    """Boxes for a cluster's labels in one column beside it (right, else left), in the points' y order."""
    order = sorted(group, key=lambda i: points[i][1])
    h = max(sizes[i][1] for i in order)
    w = max(sizes[i][0] for i in order)
    ys = _spread([points[i][1] for i in order], h, area.y0, area.y1)
    for side in (1, -1):
        edge = (max if side == 1 else min)(points[i][0] for i in order) + side * (point_r + 12)
        while area.x0 <= edge <= area.x1:
            boxes = _uncrossed(order, ys, points, sizes, edge, side)
            leaders = [(*points[i], *boxes[i].nearest(*points[i])) for i in order]
            if (all(b.inside(area) for b in boxes.values())
                    and not any(b.hits(o) for b in boxes.values() for o in blocked)
                    and not any(_through(seg, lb) for seg in leaders for lb in labels)
                    and not any(_cross(a, b) for i, a in enumerate(leaders) for b in leaders[i + 1:])):
                return boxes
            edge += side * COLUMN_STEP
            if side == 1 and edge + w > area.x1 or side == -1 and edge - w < area.x0:
                break
    return {}


def _uncrossed(order: list[int], ys: list[float], points: Sequence[tuple[float, float]],
               sizes: list[tuple[float, float]], edge: float, side: int) -> dict[int, Box]:
    """Column boxes at the given centres; two leaders that cross swap their labels' places until none do
    (each swap shortens the leaders' total length, so this ends)."""
    at = dict(zip(order, ys))

    def box(i: int) -> Box:
        x0 = edge if side == 1 else edge - sizes[i][0]
        return Box(x0, at[i] - sizes[i][1] / 2, x0 + sizes[i][0], at[i] + sizes[i][1] / 2)

    for _ in range(len(order) ** 2):
        swapped = False
        for a, b in ((a, b) for n, a in enumerate(order) for b in order[n + 1:]):
            if _cross((*points[a], *box(a).nearest(*points[a])), (*points[b], *box(b).nearest(*points[b]))):
                at[a], at[b] = at[b], at[a]
                swapped = True
        if not swapped:
            break
    return {i: box(i) for i in order}


def place_labels(points: Sequence[tuple[float, float]], texts: Sequence[str], area: Box, *,
                 point_r: float = 5.0, font_px: float = 11.0, obstacles: Sequence[Box] = ()) -> list[Placed | None]:
    """A spot for each label (same order as `points`, which is also their priority), or None where none was free."""
    blocked = [*obstacles, *(Box(x - point_r, y - point_r, x + point_r, y + point_r) for x, y in points)]
    sizes = [text_size(t, font_px) for t in texts]
    out: list[Placed | None] = [None] * len(points)
    labels: list[Box] = []
    for i, (px, py) in enumerate(points):
        box = next((b for b in _next_to(px, py, *sizes[i], point_r)
                    if b.inside(area) and not any(b.hits(o) for o in blocked)), None)
        if box is not None:
            blocked.append(box)
            labels.append(box)
            out[i] = Placed(round((box.x0 + box.x1) / 2, 1), round((box.y0 + box.y1) / 2, 1), box, leader=False)
    # A cluster with a crowded point gets one column for all its labels: next-to labels would block the leaders.
    for group in _clusters(list(range(len(points))), points):
        if all(out[i] is not None for i in group):
            continue
        own = {id(out[i].box) for i in group if out[i] is not None}  # type: ignore[union-attr]
        others = [b for b in labels if id(b) not in own]
        free = [b for b in blocked if id(b) not in own]
        # as many as one column holds, the first (most important) points first; halve until one fits
        size = min(len(group), int((area.y1 - area.y0) // (max(sizes[i][1] for i in group) + 2)))
        boxes: dict[int, Box] = {}
        while size >= 2 and not boxes:
            boxes = _column(sorted(group)[:size], points, sizes, area, point_r, free, others)
            size //= 2
        if len(boxes) <= len(own):
            continue  # a column would label no more: keep the labels that fitted next to their points
        blocked = free + list(boxes.values())
        labels = others + list(boxes.values())
        for i in group:
            box = boxes.get(i)
            out[i] = None if box is None else Placed(round((box.x0 + box.x1) / 2, 1), round((box.y0 + box.y1) / 2, 1),
                                                     box, leader=True)
    return out
