"""Dependency-free line charts as inline SVG, so a report opens offline with no plotting library.

Only what the benchmark report needs: several series on shared axes, "nice" linear y ticks,
caller-chosen x ticks (which is how the percentile spectrum gets its log "nines" axis), a legend,
optional horizontal reference lines and hover tooltips on the points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["RefLine", "Series", "bar_chart", "line_chart", "nice_ticks", "nines_ticks", "nines_x"]

#: Colour-blind-safe palette (Okabe–Ito).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]


@dataclass
class Series:
    """One line: ``points`` are (x, y) in data units."""

    name: str
    points: Sequence[tuple[float, float]]
    colour: str | None = None
    dashed: bool = False
    step: bool = False  # draw as a staircase (per-interval values)
    markers: bool = False
    tooltip_unit: str = ""


@dataclass
class RefLine:
    """A labelled horizontal line (e.g. the exact maximum)."""

    y: float
    label: str
    colour: str = "#555555"


@dataclass
class _Frame:
    x0: float
    x1: float
    y0: float
    y1: float
    left: int = 70
    right: int = 36
    top: int = 40
    bottom: int = 50
    width: int = 900
    height: int = 340
    refs: list[RefLine] = field(default_factory=list)

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.width - self.left - self.right)

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.height - self.bottom - (y - self.y0) / span * (
            self.height - self.top - self.bottom
        )


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) covering ``lo .. hi``."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(target - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value < hi + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def nines_x(percentile: float) -> float:
    """Position of a percentile (0..100) on a "nines" axis: 90 % -> 1, 99 % -> 2, 99.9 % -> 3."""
    remaining = max(100.0 - percentile, 1e-9)
    return math.log10(100.0 / remaining)


def nines_ticks(max_nines: int) -> list[tuple[float, str]]:
    """Ticks 0 %, 90 %, 99 %, 99.9 % … up to ``max_nines`` nines."""
    ticks = [(0.0, "0%")]
    for n in range(1, max_nines + 1):
        ticks.append((float(n), f"{100 - 100 / 10**n:.{max(n - 2, 0)}f}%"))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.4g}"
    return f"{value:.3g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    x_range: tuple[float, float] | None = None,
    y_min: float | None = 0.0,
    ref_lines: Sequence[RefLine] = (),
    width: int = 900,
    height: int = 340,
    chart_id: str = "",
) -> str:
    """Render the series as one ``<svg>`` element (a string to embed in HTML)."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [r.y for r in ref_lines]
    id_attr = f' id="{escape(chart_id)}"' if chart_id else ""
    head = (
        f'<svg{id_attr} class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">'
        f'<text x="{width / 2}" y="22" text-anchor="middle" class="title">{escape(title)}</text>'
    )
    if not xs:
        return (
            head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="empty">'
            "no data</text></svg>"
        )
    x0, x1 = x_range if x_range else (min(xs), max(xs))
    if x_ticks:
        x0 = min(x0, min(t for t, _ in x_ticks))
        x1 = max(x1, max(t for t, _ in x_ticks))
    if x1 <= x0:
        x1 = x0 + 1.0
    lo = min(ys) if y_min is None else min(y_min, min(ys))
    y_tick_values = nice_ticks(lo, max(ys) * 1.05 if max(ys) > 0 else 1.0)
    frame = _Frame(x0, x1, y_tick_values[0], y_tick_values[-1], width=width, height=height)

    parts = [head]
    # Grid and axes.
    for y in y_tick_values:
        py = frame.py(y)
        parts.append(
            f'<line x1="{frame.left}" x2="{width - frame.right}" y1="{py:.1f}" y2="{py:.1f}" '
            'class="grid"/>'
            f'<text x="{frame.left - 6}" y="{py + 4:.1f}" text-anchor="end" class="tick">'
            f"{_fmt(y)}</text>"
        )
    ticks = x_ticks or [(x, _fmt(x)) for x in nice_ticks(x0, x1, 8) if x0 <= x <= x1]
    for x, label in ticks:
        px = frame.px(x)
        parts.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{frame.top}" y2="{height - frame.bottom}" '
            'class="grid"/>'
            f'<text x="{px:.1f}" y="{height - frame.bottom + 16}" text-anchor="middle" '
            f'class="tick">{escape(label)}</text>'
        )
    parts.append(
        f'<rect x="{frame.left}" y="{frame.top}" width="{width - frame.left - frame.right}" '
        f'height="{height - frame.top - frame.bottom}" class="frame"/>'
        f'<text x="{(frame.left + width - frame.right) / 2}" y="{height - 10}" '
        f'text-anchor="middle" class="label">{escape(x_label)}</text>'
        f'<text transform="translate(16 {(frame.top + height - frame.bottom) / 2}) rotate(-90)" '
        f'text-anchor="middle" class="label">{escape(y_label)}</text>'
    )
    for ref in ref_lines:
        py = frame.py(ref.y)
        parts.append(
            f'<line x1="{frame.left}" x2="{width - frame.right}" y1="{py:.1f}" y2="{py:.1f}" '
            f'stroke="{ref.colour}" stroke-dasharray="2 4" class="ref"/>'
            f'<text x="{width - frame.right - 4}" y="{py - 4:.1f}" text-anchor="end" '
            f'class="reflabel" fill="{ref.colour}">{escape(ref.label)}</text>'
        )
    # Series.
    for index, s in enumerate(series):
        colour = s.colour or PALETTE[index % len(PALETTE)]
        points = list(s.points)
        if s.step and points:
            stepped: list[tuple[float, float]] = []
            for (xa, ya), (xb, _) in zip(points, [*points[1:], points[-1]], strict=True):
                stepped += [(xa, ya), (xb, ya)]
            points = stepped
        coords = " ".join(f"{frame.px(x):.1f},{frame.py(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<polyline class="series" data-series="{escape(s.name)}" fill="none" '
            f'stroke="{colour}" stroke-width="2"{dash} points="{coords}"/>'
        )
        if s.markers and len(s.points) <= 400:
            for x, y in s.points:
                parts.append(
                    f'<circle cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="2.5" '
                    f'fill="{colour}"><title>{escape(s.name)}: {_fmt(y)}{s.tooltip_unit}'
                    f"</title></circle>"
                )
    # Legend, top-left inside the frame.
    for index, s in enumerate(series):
        colour = s.colour or PALETTE[index % len(PALETTE)]
        ly = frame.top + 16 + 18 * index
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<line x1="{frame.left + 10}" x2="{frame.left + 34}" y1="{ly - 4}" y2="{ly - 4}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{frame.left + 40}" y="{ly}" class="legend">{escape(s.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    width: int = 900,
    chart_id: str = "",
) -> str:
    """Horizontal bars, one per (label, value), each labelled with its value."""
    row_h, left, right, top = 28, 170, 110, 40
    height = top + row_h * max(len(bars), 1) + 20
    id_attr = f' id="{escape(chart_id)}"' if chart_id else ""
    parts = [
        f'<svg{id_attr} class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">'
        f'<text x="{width / 2}" y="22" text-anchor="middle" class="title">{escape(title)}</text>'
    ]
    if not bars:
        parts.append(f'<text x="{width / 2}" y="{height / 2 + 10}" text-anchor="middle" '
                     'class="empty">no data</text></svg>')
        return "".join(parts)
    most = max((v for _, v in bars if math.isfinite(v)), default=0.0) or 1.0
    span = width - left - right
    for index, (label, value) in enumerate(bars):
        y = top + row_h * index
        length = max(value, 0.0) / most * span if math.isfinite(value) else 0.0
        colour = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" class="tick">'
            f"{escape(label)}</text>"
            f'<rect class="bar" data-bar="{escape(label)}" x="{left}" y="{y + 4}" '
            f'width="{length:.1f}" height="{row_h - 8}" fill="{colour}"/>'
            f'<text x="{left + length + 6:.1f}" y="{y + 17}" class="tick">'
            f"{escape(_fmt(value))}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
