"""The clips-per-day SVG: valid XML, one bar a day (or week), heights in proportion, escaped."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from clipwatch.web.charts import MAX_DAILY_BARS, bars_for, clips_per_day_svg, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"
START = date(2026, 1, 1)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "chart-bar"]


def _series(counts: list[int]) -> list[tuple[date, int]]:
    return [(START + timedelta(days=i), n) for i, n in enumerate(counts)]


def test_accessible_and_csp_clean() -> None:
    svg = clips_per_day_svg(_series([3, 0, 7]), title="Clips per day")
    root = _parse(svg)
    assert root.get("role") == "img"
    labelled = root.get("aria-labelledby", "").split()
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    assert labelled
    assert set(labelled) <= ids
    assert root.find(f"{SVG}title") is not None
    desc = root.find(f"{SVG}desc")
    assert desc is not None
    assert desc.text == (
        "10 clips from 2026-01-01 to 2026-01-03, one bar per day; busiest day: 2026-01-03, 7 clips."
    )
    assert "style" not in svg
    assert "<script" not in svg
    assert not any(k.startswith("on") for el in root.iter() for k in el.attrib)


def test_bar_tooltips_and_axis_labels() -> None:
    root = _parse(clips_per_day_svg(_series([1, 2, 5])))
    tips = [b.find(f"{SVG}title").text for b in _bars(root)]  # type: ignore[union-attr]
    assert tips == ["2026-01-01: 1 clip", "2026-01-02: 2 clips", "2026-01-03: 5 clips"]
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "2026-01-01" in labels
    assert "2026-01-03" in labels
    assert "clips per day" in labels
    assert "5" in labels  # the y axis reaches the busiest day


def test_title_is_escaped_and_control_chars_dropped() -> None:
    svg = clips_per_day_svg(_series([1]), title='<script>alert("x")</script>\x00&')
    root = _parse(svg)
    assert "<script>" not in svg
    assert root.find(f"{SVG}title").text == '<script>alert("x")</script>&'  # type: ignore[union-attr]


def test_no_days_says_so() -> None:
    root = _parse(clips_per_day_svg([]))
    assert _bars(root) == []
    assert "No clips in this period" in [t.text for t in root.iter(f"{SVG}text")]
    assert root.find(f"{SVG}desc").text == "No days in this period."  # type: ignore[union-attr]


def test_one_day_and_all_zeros() -> None:
    (one,) = _bars(_parse(clips_per_day_svg(_series([4]))))
    assert float(one.get("height", "nan")) > 0
    zeros = _bars(_parse(clips_per_day_svg(_series([0] * 30))))
    assert len(zeros) == 30
    assert all(float(b.get("height", "nan")) == 0 for b in zeros)


def test_huge_counts_are_exact_in_text() -> None:
    big = 10**30 + 7
    svg = clips_per_day_svg(_series([big, 1]))
    root = _parse(svg)
    assert f"{big:,} clips" in svg
    heights = [float(b.get("height", "nan")) for b in _bars(root)]
    assert all(math.isfinite(h) for h in heights)
    assert heights[0] > heights[1]


def test_a_year_is_drawn_by_week() -> None:
    counts = [i % 5 for i in range(366)]
    root = _parse(clips_per_day_svg(_series(counts)))
    bars = _bars(root)
    assert len(bars) == math.ceil(366 / 7)
    assert sum(int(b.get("data-clips", "-1")) for b in bars) == sum(counts)
    assert "clips per week" in [t.text for t in root.iter(f"{SVG}text")]
    first = bars[0].find(f"{SVG}title").text  # type: ignore[union-attr]
    assert first == f"2026-01-01 to 2026-01-07: {sum(counts[:7])} clips"


def test_unsorted_duplicates_and_negatives() -> None:
    bars = bars_for([(START + timedelta(days=1), 2), (START, 3), (START, 1), (START, -5)])
    assert [(b.start, b.clips) for b in bars] == [(START, 4), (START + timedelta(days=1), 2)]


def test_nice_ceiling() -> None:
    assert [nice_ceiling(n) for n in (0, 1, 2, 3, 7, 10, 11, 99, 101, 600)] == [
        1,
        1,
        2,
        5,
        10,
        10,
        20,
        100,
        200,
        1000,
    ]


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(
        st.one_of(st.integers(0, 50), st.integers(0, 10**18), st.integers(-3, 0)), max_size=400
    ),
    width=st.integers(-10, 5000),
    height=st.integers(-10, 5000),
    title=st.text(max_size=40),
)
def test_any_series_makes_a_sound_chart(
    counts: list[int], width: int, height: int, title: str
) -> None:
    svg = clips_per_day_svg(_series(counts), width=width, height=height, title=title)
    root = _parse(svg)  # well-formed XML whatever the title held
    for element in root.iter():
        for name in ("x", "y", "width", "height", "x1", "x2", "y1", "y2"):
            if name in element.attrib:
                assert math.isfinite(float(element.attrib[name]))
    bars = _bars(root)
    expected = len(counts) if len(counts) <= MAX_DAILY_BARS else math.ceil(len(counts) / 7)
    assert len(bars) == expected
    values = [int(b.get("data-clips", "-1")) for b in bars]
    assert sum(values) == sum(max(0, n) for n in counts)
    heights = [float(b.get("height", "nan")) for b in bars]
    tallest = max(values, default=0)
    if tallest > 0:
        # Heights in proportion to the counts (to the 2 decimals the SVG is written with).
        scale = heights[values.index(tallest)] / tallest
        for value, h in zip(values, heights, strict=True):
            assert abs(h - value * scale) <= 0.011
    else:
        assert all(h == 0 for h in heights)
    plot_bottom = (
        max(float(b.get("y", "0")) + float(b.get("height", "0")) for b in bars) if bars else 0
    )
    assert plot_bottom <= float(root.get("height", "0"))
