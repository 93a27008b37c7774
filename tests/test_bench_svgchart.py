"""The inline SVG charts of report.html: axes, the nines scale, degenerate data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from aml_client.bench.report.svgchart import (
    RefLine,
    Series,
    line_chart,
    nice_ticks,
    nines_ticks,
    nines_x,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(0, 1000, [0, 200, 400, 600, 800, 1000]), (0, 7, [0, 2, 4, 6, 8]),
     (0, 0.9, [0, 0.2, 0.4, 0.6, 0.8, 1.0])],
)
def test_nice_ticks(lo, hi, expected):
    assert nice_ticks(lo, hi) == pytest.approx(expected)


def test_nice_ticks_cover_the_range():
    for hi in (1.3, 17, 243.1, 1020.8, 99_999):
        ticks = nice_ticks(0, hi)
        assert ticks[0] <= 0 and ticks[-1] >= hi and 3 <= len(ticks) <= 12


def test_nines_axis():
    assert nines_x(0) == 0
    assert nines_x(90) == pytest.approx(1)
    assert nines_x(99) == pytest.approx(2)
    assert nines_x(99.9) == pytest.approx(3)
    assert [label for _, label in nines_ticks(4)] == ["0%", "90%", "99%", "99.9%", "99.99%"]


def test_chart_is_valid_svg_with_series_legend_and_refline():
    svg = line_chart(
        [Series("p99", [(0, 1.0), (1, 3.0), (2, 2.0)], markers=True, tooltip_unit=" ms"),
         Series("max <&>", [(0, 2.0), (2, 5.0)], dashed=True, step=True)],
        title="Latency & time", x_label="t (s)", y_label="ms",
        ref_lines=[RefLine(4.5, "max 4.5 ms")], chart_id="c1",
    )
    root = ET.fromstring(svg)  # well-formed XML, special characters escaped
    assert root.get("id") == "c1"
    polylines = root.findall(f"{SVG}polyline")
    assert [p.get("data-series") for p in polylines] == ["p99", "max <&>"]
    assert len(root.findall(f"{SVG}circle")) == 3
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Latency & time" in texts and "max 4.5 ms" in texts and "max <&>" in texts
    # Higher values are drawn higher (smaller y): p99 at x=1 (3.0) above x=0 (1.0).
    points = [tuple(map(float, p.split(","))) for p in polylines[0].get("points").split()]
    assert points[1][1] < points[0][1] and points[0][0] < points[1][0] < points[2][0]
    # The step series doubles its points into a staircase.
    assert len(polylines[1].get("points").split()) == 4


def test_chart_without_data_says_so():
    svg = line_chart([Series("x", [])], title="Empty", x_label="x", y_label="y")
    ET.fromstring(svg)
    assert "no data" in svg


def test_flat_series_does_not_divide_by_zero():
    svg = line_chart([Series("flat", [(5, 0.0), (5, 0.0)])], title="t", x_label="x", y_label="y")
    assert not re.search(r"nan|inf", svg, re.IGNORECASE)
