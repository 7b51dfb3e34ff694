"""Accessible charts for the visit service's reports, drawn on the server as inline SVG: no
JavaScript and no dependencies.

Each chart is a ``<figure>`` holding an ``<svg role="img">`` named by its ``<title>`` and
described by its ``<desc>``, and a ``<table class="chart-data">`` with the same numbers, so a
screen-reader or keyboard user gets the data, not only a picture (the page may show the table or
hide it visually). The series colours all have at least 3:1 contrast against white (WCAG 2.1
success criterion 1.4.11, non-text contrast), the lines of a line chart also differ by their
dash pattern, and the values are written on the bars and points. The markup is well-formed
XML (quoted attributes, self-closed empty elements), so it is valid in HTML and XHTML alike.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Sequence
from html import escape

# Series colours, each with >= 3:1 contrast against white (#ffffff).
PALETTE: tuple[str, ...] = (
    "#1f5fa8",  # blue
    "#b35900",  # dark orange
    "#2e7d32",  # green
    "#8e3fa8",  # purple
    "#c2185b",  # magenta
    "#00707a",  # teal
)
BACKGROUND = "#ffffff"
TEXT = "#1a1a1a"
AXIS = "#595959"
GRID = "#d9d9d9"
DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 4", "1 2")  # line chart: one pattern per series
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
NICE_STEPS = (1.0, 2.0, 2.5, 5.0)  # times a power of ten

_PREFIX = secrets.token_hex(3)  # tells apart the charts of different processes
_counter = itertools.count(1)

Series = Sequence[tuple[str, Sequence[float]]]


def relative_luminance(colour: str) -> float:
    """The WCAG 2.x relative luminance of a ``#rrggbb`` colour, 0 (black) to 1 (white)."""
    hex_digits = colour.removeprefix("#")
    if len(hex_digits) != 6:
        raise ValueError(f"a colour is #rrggbb, not {colour!r}")
    channels = []
    for i in (0, 2, 4):
        c = int(hex_digits[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """The WCAG contrast ratio of two colours, 1 to 21."""
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def number(value: float) -> str:
    """A value with at most one decimal: 12, 12.5, -3.3 (never "-0")."""
    rounded = round(value, 1)
    if rounded == 0:
        return "0"
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.1f}"


def _with_unit(value: float, unit: str) -> str:
    if not unit:
        return number(value)
    return f"{number(value)}{unit}" if unit == "%" else f"{number(value)} {unit}"


def nice_ticks(low: float, high: float) -> list[float]:
    """4 or 5 evenly spaced round ticks covering [low, high] and including 0; each step is
    1, 2, 2.5 or 5 times a power of ten and at least 0.1 (so one decimal shows every tick)."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low <= 0:
        high = 1.0
    step = 0.1
    for exponent in range(-1, 309):
        found = False
        for nice in NICE_STEPS:
            candidate = nice * 10.0**exponent
            if candidate < 0.1 or (nice == 2.5 and exponent < 0):
                continue
            below, above = math.ceil(-low / candidate - 1e-9), math.ceil(high / candidate - 1e-9)
            if below + above <= 4:
                step, found = candidate, True
                break
        if found:
            break
    below = math.ceil(-low / step - 1e-9)
    above = math.ceil(high / step - 1e-9)
    while below + above < 3:  # at least four ticks: grow away from zero
        if above > 0 or below == 0:
            above += 1
        else:
            below += 1
    return [round(i * step, 10) for i in range(-below, above + 1)]


def _new_id() -> str:
    return f"chart-{_PREFIX}-{next(_counter)}"


def _check(labels: Sequence[str], series: Series, width: int, height: int) -> None:
    if not 240 <= width <= 4000 or not 160 <= height <= 4000:
        raise ValueError("a chart is 240 to 4000 wide and 160 to 4000 high")
    if len(series) > len(PALETTE):
        raise ValueError(f"a chart has at most {len(PALETTE)} series, not {len(series)}")
    for name, values in series:
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(labels)} labels")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"series {name!r} has a value that is not a finite number")


def _empty(title: str, empty_text: str) -> str:
    return (
        '<figure class="chart chart-empty">'
        f"<figcaption>{escape(title)}</figcaption>"
        f'<p class="chart-empty-text">{escape(empty_text)}</p>'
        "</figure>"
    )


def _default_description(kind: str, labels: Sequence[str], series: Series, unit: str) -> str:
    values = [v for _, vs in series for v in vs]
    names = ", ".join(name for name, _ in series)
    return (
        f"{kind} of {names} for {len(labels)} "
        f"{'item' if len(labels) == 1 else 'items'}, {labels[0]} to {labels[-1]}; "
        f"values from {_with_unit(min(values), unit)} to {_with_unit(max(values), unit)}. "
        "The same numbers are in the table that follows."
    )


def _table(title: str, labels: Sequence[str], series: Series, unit: str) -> str:
    suffix = f" ({unit})" if unit else ""
    head = "".join(f'<th scope="col">{escape(name + suffix)}</th>' for name, _ in series)
    rows = "".join(
        f'<tr><th scope="row">{escape(label)}</th>'
        + "".join(f"<td>{number(values[i])}</td>" for _, values in series)
        + "</tr>"
        for i, label in enumerate(labels)
    )
    return (
        f'<table class="chart-data"><caption>{escape(title)}</caption>'
        f"<thead><tr><td></td>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


class _Frame:
    """The layout shared by both kinds of chart: title, legend, axes and scale."""

    def __init__(
        self,
        title: str,
        labels: Sequence[str],
        series: Series,
        unit: str,
        width: int,
        height: int,
    ) -> None:
        self.labels, self.series, self.width, self.height = labels, series, width, height
        values = [v for _, vs in series for v in vs]
        self.ticks = nice_ticks(min(values), max(values))
        self.parts: list[str] = [
            f'<rect class="chart-background" x="0" y="0" width="{width}" height="{height}" '
            f'fill="{BACKGROUND}"/>',
            f'<text x="12" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        ]
        top = 40.0
        if len(series) > 1:
            top = self._legend(top)
        if unit:
            unit_text = f'<text x="12" y="{top + 2:.1f}" font-size="11">{escape(unit)}</text>'
            self.parts.append(unit_text)
            top += 12
        tick_width = max(len(number(t)) for t in self.ticks)
        self.left = 18 + 7 * tick_width
        self.right = width - 12
        self.slot = (self.right - self.left) / len(labels)
        longest = max(len(label) for label in labels)
        self.rotate = longest * 6.2 > self.slot - 4
        # room under the lowest tick for the value written under a negative bar
        self.under = 12 if min(values) < 0 else 0
        bottom = (min(110, 16 + int(longest * 4.2)) if self.rotate else 26) + self.under
        self.top, self.bottom = top + 14, height - bottom
        if self.bottom - self.top < 60:
            raise ValueError("the chart is too low for its title, legend and labels")
        self._axes()

    def _legend(self, top: float) -> float:
        x, y = 12.0, top
        for i, (name, _) in enumerate(self.series):
            needed = 22 + 7 * len(name)
            if x > 12 and x + needed > self.width - 12:
                x, y = 12.0, y + 18
            self.parts.append(
                f'<rect class="legend-swatch" x="{x:.1f}" y="{y - 10:.1f}" width="12" '
                f'height="12" fill="{PALETTE[i]}"/>'
                f'<text x="{x + 16:.1f}" y="{y:.1f}" font-size="12">{escape(name)}</text>'
            )
            x += needed + 12
        return y + 16

    def y(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return self.bottom - (value - low) / (high - low) * (self.bottom - self.top)

    def x(self, index: int) -> float:
        return self.left + (index + 0.5) * self.slot

    def _axes(self) -> None:
        for tick in self.ticks:
            y = self.y(tick)
            if tick != 0:
                self.parts.append(
                    f'<line class="grid" x1="{self.left}" y1="{y:.1f}" x2="{self.right}" '
                    f'y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>'
                )
            self.parts.append(
                f'<text class="tick" x="{self.left - 6}" y="{y + 4:.1f}" font-size="11" '
                f'text-anchor="end">{number(tick)}</text>'
            )
        self.parts.append(
            f'<line class="y-axis" x1="{self.left}" y1="{self.top:.1f}" x2="{self.left}" '
            f'y2="{self.bottom:.1f}" stroke="{AXIS}" stroke-width="1"/>'
        )
        for i, label in enumerate(self.labels):
            x, y = self.x(i), self.bottom + self.under + 16
            if self.rotate:
                self.parts.append(
                    f'<text class="label" x="{x:.1f}" y="{y:.1f}" font-size="11" '
                    f'text-anchor="end" transform="rotate(-40 {x:.1f} {y:.1f})">'
                    f"{escape(label)}</text>"
                )
            else:
                self.parts.append(
                    f'<text class="label" x="{x:.1f}" y="{y:.1f}" font-size="11" '
                    f'text-anchor="middle">{escape(label)}</text>'
                )

    def zero_line(self) -> None:
        y = self.y(0)
        self.parts.append(
            f'<line class="zero-line" x1="{self.left}" y1="{y:.1f}" x2="{self.right}" '
            f'y2="{y:.1f}" stroke="{AXIS}" stroke-width="1.5"/>'
        )

    def figure(self, kind: str, title: str, description: str, unit: str) -> str:
        chart_id = _new_id()
        text = description or _default_description(kind, self.labels, self.series, unit)
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc" '
            f'viewBox="0 0 {self.width} {self.height}" width="{self.width}" '
            f'height="{self.height}" font-family="{escape(FONT)}" fill="{TEXT}">'
            f'<title id="{chart_id}-title">{escape(title)}</title>'
            f'<desc id="{chart_id}-desc">{escape(text)}</desc>' + "".join(self.parts) + "</svg>"
        )
        return (
            f'<figure class="chart" id="{chart_id}">{svg}'
            f"{_table(title, self.labels, self.series, unit)}</figure>"
        )


def bar_chart(
    title: str,
    labels: list[str],
    series: list[tuple[str, list[float]]],
    *,
    unit: str = "",
    width: int = 640,
    height: int = 280,
    description: str = "",
    empty_text: str = "No data yet",
) -> str:
    """Grouped bars: for each label one bar per series, from zero, its value written on it.
    ``description`` (the svg's ``<desc>``) defaults to a summary of the data."""
    _check(labels, series, width, height)
    if not labels or not series:
        return _empty(title, empty_text)
    frame = _Frame(title, labels, series, unit, width, height)
    group = frame.slot * 0.8
    bar = group / len(series)
    zero = frame.y(0)
    for s, (_, values) in enumerate(series):
        for i, value in enumerate(values):
            x = frame.x(i) - group / 2 + s * bar
            y = frame.y(value)
            top, size = min(y, zero), abs(zero - y)
            frame.parts.append(
                f'<rect class="bar" x="{x + 1:.2f}" y="{top:.2f}" width="{max(bar - 2, 1):.2f}" '
                f'height="{size:.2f}" fill="{PALETTE[s]}"/>'
            )
            text_y = y - 4 if value >= 0 else y + 12
            frame.parts.append(
                f'<text class="value" x="{x + bar / 2:.1f}" y="{text_y:.1f}" font-size="10" '
                f'text-anchor="middle">{number(value)}</text>'
            )
    frame.zero_line()
    return frame.figure("Bar chart", title, description, unit)


def line_chart(
    title: str,
    labels: list[str],
    series: list[tuple[str, list[float]]],
    *,
    unit: str = "",
    width: int = 640,
    height: int = 280,
    description: str = "",
    empty_text: str = "No data yet",
) -> str:
    """Lines with a marked and labelled point per label, such as the NPS by month (-100 to
    100); a zero line shows which values are negative."""
    _check(labels, series, width, height)
    if not labels or not series:
        return _empty(title, empty_text)
    frame = _Frame(title, labels, series, unit, width, height)
    frame.zero_line()
    for s, (_, values) in enumerate(series):
        points = [(frame.x(i), frame.y(v)) for i, v in enumerate(values)]
        dash = f' stroke-dasharray="{DASHES[s]}"' if DASHES[s] else ""
        frame.parts.append(
            '<polyline class="line" fill="none" stroke-width="2.5" '
            f'stroke="{PALETTE[s]}"{dash} points="'
            + " ".join(f"{x:.2f},{y:.2f}" for x, y in points)
            + '"/>'
        )
        for (x, y), value in zip(points, values, strict=True):
            frame.parts.append(
                f'<circle class="point" cx="{x:.2f}" cy="{y:.2f}" r="4" fill="{PALETTE[s]}" '
                f'stroke="{BACKGROUND}" stroke-width="1"/>'
            )
            frame.parts.append(
                f'<text class="value" x="{x:.1f}" y="{y - 8 if value >= 0 else y + 16:.1f}" '
                'font-size="10" text-anchor="middle">'
                f"{number(value)}</text>"
            )
    return frame.figure("Line chart", title, description, unit)
