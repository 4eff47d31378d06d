"""Point labels that do not overlap: a side chosen per label, then a small repulsion pass in
display space.

Model names sit up-right of their points, or up-left where the right side would cover another
point, another point's whisker or an earlier label, or leave the axes. Labels that still
collide (with each other or with another point) are pushed apart vertically, kept inside the
axes, and a label that ended up away from its point gets a thin leader line.
"""

from __future__ import annotations

from typing import Sequence

from matplotlib.axes import Axes
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox


def _hits(box: Bbox, obstacles, owner: int, margin: float = 3.0) -> int:
    """How many obstacles of other points lie in ``box`` (grown by ``margin`` pixels)."""
    return sum(1 for px, py, k in obstacles if k != owner and box.x0 - margin <= px <= box.x1
               + margin and box.y0 - margin <= py <= box.y1 + margin)


def place_labels(ax: Axes, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], *,
                 fontsize: float = 8, color: str = "0.15", max_iter: int = 300,
                 avoid: Sequence[Sequence[tuple[float, float]]] = ()) -> list[Annotation]:
    """Label points without overlap: up-right of each point (up-left where that covers
    another point, whisker or label, or leaves the axes), then push overlapping labels apart
    (and off other points) in display space; a label that ends up away from its point gets a
    thin leader line. ``avoid[i]``: more data points that belong to point ``i`` (its
    whiskers), kept clear of the other labels like the points themselves. It draws the figure
    to read the limits and layout in display space, so the canvas must have a renderer (Agg).
    Returns the text artists."""
    fig = ax.figure
    fig.canvas.draw()  # final limits and layout, so display coordinates hold
    renderer = fig.canvas.get_renderer()
    px_to_pt = 72.0 / fig.dpi
    points = ax.transData.transform(list(zip(xs, ys))) if len(xs) else []
    obstacles = [(px, py, k) for k, (px, py) in enumerate(points)]
    for k, extra in enumerate(avoid):
        if len(extra):
            obstacles += [(px, py, k) for px, py in ax.transData.transform(list(extra))]
    axes_box = ax.get_window_extent(renderer)
    texts: list[Annotation] = []
    for index, ((x, y), label) in enumerate(zip(zip(xs, ys), labels)):
        text = ax.annotate(label, (x, y), xytext=(5, 3), textcoords="offset points",
                           fontsize=fontsize, color=color, ha="left", va="bottom", zorder=5)
        right = text.get_window_extent(renderer)
        text.set_ha("right")
        text.xyann = (-5, 3)
        left = text.get_window_extent(renderer)
        placed = [t.get_window_extent(renderer) for t in texts]

        def cost(box: Bbox, inside: bool) -> float:
            return (0 if inside else 1000) + _hits(box, obstacles, index) + 10 * sum(
                box.overlaps(other) for other in placed)

        if cost(right, right.x1 <= axes_box.x1) <= cost(left, left.x0 >= axes_box.x0):
            text.set_ha("left")
            text.xyann = (5, 3)
        texts.append(text)
    pad = 2.0
    for _ in range(max_iter):
        boxes = [t.get_window_extent(renderer).expanded(1.0, 1.0).padded(pad) for t in texts]
        moves = [[0.0, 0.0] for _ in texts]
        moved = False
        for i, a in enumerate(boxes):
            for j in range(i + 1, len(boxes)):
                b = boxes[j]
                if a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0:
                    continue
                overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
                step = overlap / 2 + 0.5
                if (a.y0 + a.y1) >= (b.y0 + b.y1):
                    moves[i][1] += step
                    moves[j][1] -= step
                else:
                    moves[i][1] -= step
                    moves[j][1] += step
                moved = True
            for k, (px, py) in enumerate(points):
                if k == i:
                    continue
                if a.x0 - 3 <= px <= a.x1 + 3 and a.y0 - 3 <= py <= a.y1 + 3:
                    centre = (a.y0 + a.y1) / 2
                    moves[i][1] += (a.y1 - py + 4) if centre >= py else -(py - a.y0 + 4)
                    moves[i][1] *= 0.5
                    moved = True
        for text, (dx, dy), box in zip(texts, moves, boxes):
            if dx or dy:
                ox, oy = text.xyann
                new_y = oy + dy * px_to_pt
                # stay inside the axes
                height_pt = box.height * px_to_pt
                point_y = ax.transData.transform(text.xy)[1]
                top_limit = (axes_box.y1 - point_y) * px_to_pt - height_pt
                bottom_limit = (axes_box.y0 - point_y) * px_to_pt
                new_y = max(min(new_y, top_limit), bottom_limit)
                text.xyann = (ox, new_y)
        if not moved:
            break
    for text in texts:
        ox, oy = text.xyann
        if abs(oy - 3) > 8:
            start = ax.transData.transform(text.xy)
            box = text.get_window_extent(renderer)
            end_x = box.x0 if text.get_ha() == "left" else box.x1
            end_y = (box.y0 + box.y1) / 2
            inv = ax.transData.inverted()
            (x1, y1), (x2, y2) = inv.transform([start, (end_x, end_y)])
            ax.plot([x1, x2], [y1, y2], color="0.6", linewidth=0.6, zorder=4)
    return texts
