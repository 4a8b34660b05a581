"""Clips per day as an inline SVG bar chart, rendered on the server: no chart library, no script.

The SVG is accessible (role="img", a <title> and a <desc> that says the numbers in words, one
<title> per bar for pointer users) and works under a strict CSP: no <style>, no style="" and
no script; colours come from presentation attributes (fill=) and classes the page's CSS may
override. Every text is escaped and stripped of characters XML 1.0 forbids.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

MAX_DAILY_BARS = 120  # more days than this are drawn one bar a week (365d → 53 bars)
MIN_WIDTH, MIN_HEIGHT = 120, 80
MAX_SIDE = 4000
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 8, 12, 36
_NOT_XML = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Bar:
    start: date
    days: int  # 1, or 7 for a week (fewer for the last week of the period)
    clips: int

    @property
    def label(self) -> str:
        if self.days == 1:
            return self.start.isoformat()
        end = self.start + timedelta(days=self.days - 1)
        return f"{self.start.isoformat()} to {end.isoformat()}"


def _text(value: str) -> str:
    return html.escape(_NOT_XML.sub("", value), quote=True)


def _clips(count: int) -> str:
    return f"{count:,} clip{'s' * (count != 1)}"


def bars_for(days: Iterable[tuple[date, int]]) -> list[Bar]:
    """One bar a day in date order (a date given twice is summed, a negative count is 0), or one
    a week from the first day when there are more than MAX_DAILY_BARS days."""
    merged: dict[date, int] = {}
    for day, count in days:
        merged[day] = merged.get(day, 0) + max(0, int(count))
    ordered = sorted(merged.items())
    if len(ordered) <= MAX_DAILY_BARS:
        return [Bar(day, 1, count) for day, count in ordered]
    weeks: list[Bar] = []
    for at in range(0, len(ordered), 7):
        chunk = ordered[at : at + 7]
        weeks.append(Bar(chunk[0][0], len(chunk), sum(count for _, count in chunk)))
    return weeks


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 times 10^k at or above `value` (exact for any size of int)."""
    if value <= 1:
        return 1
    magnitude: int = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    raise AssertionError("unreachable")  # pragma: no cover


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def clips_per_day_svg(
    days: list[tuple[date, int]],
    *,
    width: int = 720,
    height: int = 240,
    title: str = "Clips per day",
    chart_id: str = "clips-chart",
) -> str:
    """The chart as an SVG string to put inline in a page (already escaped; mark it safe)."""
    width = min(MAX_SIDE, max(MIN_WIDTH, int(width)))
    height = min(MAX_SIDE, max(MIN_HEIGHT, int(height)))
    ident = _ID.sub("", chart_id) or "clips-chart"
    bars = bars_for(days)
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    base_y = _TOP + plot_h
    unit = "week" if any(b.days > 1 for b in bars) else "day"

    total = sum(b.clips for b in bars)
    if not bars:
        summary = "No days in this period."
    else:
        busiest = max(bars, key=lambda b: (b.clips, b.start))
        summary = (
            f"{_clips(total)} from {bars[0].start.isoformat()} to "
            f"{(bars[-1].start + timedelta(days=bars[-1].days - 1)).isoformat()}, "
            f"one bar per {unit}; busiest {unit}: {busiest.label}, {_clips(busiest.clips)}."
        )
    top = nice_ceiling(max((b.clips for b in bars), default=0))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{_text(title)}</title>',
        f'<desc id="{ident}-desc">{_text(summary)}</desc>',
    ]
    # Axes and y labels: 0 and the top, and the middle when it is a whole number.
    ticks = [0, top] if top % 2 else [0, top // 2, top]
    for tick in ticks:
        y = base_y - plot_h * (tick / top)
        out.append(
            f'<line class="chart-grid" x1="{_LEFT}" x2="{width - _RIGHT}" '
            f'y1="{_num(y)}" y2="{_num(y)}" stroke="currentColor" stroke-opacity="0.25" '
            'stroke-width="1"/>'
        )
        out.append(
            f'<text class="chart-label" x="{_LEFT - 6}" y="{_num(y + 4)}" text-anchor="end" '
            f'font-size="11" fill="currentColor">{tick:,}</text>'
        )
    out.append(
        f'<text class="chart-label" x="12" y="{_num(_TOP + plot_h / 2)}" font-size="11" '
        f'fill="currentColor" text-anchor="middle" '
        f'transform="rotate(-90 12 {_num(_TOP + plot_h / 2)})">clips per {unit}</text>'
    )
    if not bars:
        out.append(
            f'<text class="chart-empty" x="{_num(_LEFT + plot_w / 2)}" '
            f'y="{_num(_TOP + plot_h / 2)}" text-anchor="middle" font-size="13" '
            f'fill="currentColor">No clips in this period</text>'
        )
    else:
        slot = plot_w / len(bars)
        gap = slot * 0.15 if slot >= 4 else 0
        for index, bar in enumerate(bars):
            h = plot_h * (bar.clips / top)
            out.append(
                f'<rect class="chart-bar" x="{_num(_LEFT + index * slot + gap / 2)}" '
                f'y="{_num(base_y - h)}" width="{_num(max(slot - gap, 0.5))}" '
                f'height="{_num(h)}" fill="#9146ff" data-clips="{bar.clips}">'
                f"<title>{_text(bar.label)}: {_clips(bar.clips)}</title></rect>"
            )
        # x labels: the first and last bar, and the middle one when there is room.
        marks = sorted({0, len(bars) // 2, len(bars) - 1}) if len(bars) > 2 else [0, len(bars) - 1]
        for index in sorted(set(marks)):
            x = _LEFT + (index + 0.5) * slot
            anchor = "start" if index == 0 else "end" if index == len(bars) - 1 else "middle"
            if len(bars) == 1:
                anchor = "middle"
            out.append(
                f'<text class="chart-label" x="{_num(x)}" y="{base_y + 16}" font-size="11" '
                f'fill="currentColor" text-anchor="{anchor}">'
                f"{_text(bars[index].start.isoformat())}</text>"
            )
    out.append(
        f'<line class="chart-axis" x1="{_LEFT}" x2="{width - _RIGHT}" y1="{base_y}" '
        f'y2="{base_y}" stroke="currentColor" stroke-width="1"/>'
    )
    out.append("</svg>")
    return "".join(out)
