"""The visit service's server-drawn SVG charts: well-formed markup, the accessible name and
description, escaping, the data table, proportional bars, round ticks, negative values under the
zero line, the palette's contrast against white, unique ids and the empty chart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from itertools import pairwise

import pytest

from examples.visit_service.charts import (
    PALETTE,
    bar_chart,
    contrast_ratio,
    line_chart,
    nice_ticks,
    number,
    relative_luminance,
)

SVG = "{http://www.w3.org/2000/svg}"
MONTHS = ["2026-01", "2026-02", "2026-03"]


def parse(markup: str) -> ET.Element:
    figure = ET.fromstring(markup)  # raises if the markup is not well-formed
    assert figure.tag == "figure"
    return figure


def svg_of(figure: ET.Element) -> ET.Element:
    svg = figure.find(f"{SVG}svg")
    assert svg is not None
    return svg


def with_class(svg: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in svg.iter(f"{SVG}{tag}") if e.get("class") == cls]


def table_rows(figure: ET.Element) -> list[list[str]]:
    table = figure.find("table")
    assert table is not None and table.get("class") == "chart-data"
    return [["".join(cell.itertext()) for cell in row] for row in table.iter("tr")]


@pytest.mark.parametrize("draw", [bar_chart, line_chart])
def test_svg_is_well_formed_and_named(draw: Callable[..., str]) -> None:
    figure = parse(draw("Visits by month", MONTHS, [("Visits", [3, 5, 8])], description="Rising."))
    svg = svg_of(figure)
    assert svg.get("role") == "img"
    title_id, desc_id = (svg.get("aria-labelledby") or "").split()
    title, desc = svg.find(f"{SVG}title"), svg.find(f"{SVG}desc")
    assert title is not None and title.get("id") == title_id and title.text == "Visits by month"
    assert desc is not None and desc.get("id") == desc_id and desc.text == "Rising."
    assert list(svg)[:2] == [title, desc]  # the name and description come first
    caption = figure.find("table/caption")
    assert caption is not None and caption.text == "Visits by month"


def test_default_description_summarises_the_data() -> None:
    svg = svg_of(parse(bar_chart("Visits", MONTHS, [("Visits", [3, 5, 8])], unit="min")))
    desc = svg.find(f"{SVG}desc")
    assert desc is not None and desc.text is not None
    assert "2026-01 to 2026-03" in desc.text
    assert "3 min to 8 min" in desc.text
    assert "table" in desc.text


@pytest.mark.parametrize("draw", [bar_chart, line_chart])
def test_text_is_escaped(draw: Callable[..., str]) -> None:
    markup = draw(
        '<script>alert("t")</script>',
        ["<script>", "A & B", "'quoted'"],
        [("<b>first</b>", [1, 2, 3]), ('"second"', [3, 2, 1])],
        unit="<u>",
        description="<i>d</i>",
    )
    assert "<script>" not in markup and "<b>" not in markup and "<i>" not in markup
    assert "<u>" not in markup
    assert "&lt;script&gt;" in markup
    figure = parse(markup)
    svg = svg_of(figure)
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert '<script>alert("t")</script>' in texts  # the visible title
    assert {"<script>", "A & B", "'quoted'"} <= set(texts)  # the labels
    assert {"<b>first</b>", '"second"'} <= set(texts)  # the legend
    assert table_rows(figure)[0][1:] == ["<b>first</b> (<u>)", '"second" (<u>)']


def test_table_has_a_row_per_label_with_the_numbers() -> None:
    figure = parse(
        bar_chart(
            "Visits",
            MONTHS,
            [("Video visits", [3, 5.25, 8]), ("Group visits", [0, 1.04, 2.96])],
            unit="min",
        )
    )
    assert table_rows(figure) == [
        ["", "Video visits (min)", "Group visits (min)"],
        ["2026-01", "3", "0"],
        ["2026-02", "5.2", "1"],
        ["2026-03", "8", "3"],
    ]
    row_headers = figure.findall("table/tbody/tr/th")
    assert [th.get("scope") for th in row_headers] == ["row"] * 3


def test_numbers_have_at_most_one_decimal() -> None:
    assert [number(v) for v in (0, 12, 12.04, 12.25, -3.33, -0.04, 1e6, 2.5)] == [
        "0", "12", "12", "12.2", "-3.3", "0", "1000000", "2.5",
    ]  # fmt: skip
    markup = bar_chart("Minutes", ["a"], [("Average", [3.14159])])
    assert "3.1" in markup and "3.14" not in markup


def test_bar_heights_are_proportional() -> None:
    svg = svg_of(parse(bar_chart("Answers", [*MONTHS, "2026-04"], [("Answers", [10, 20, 40, 0])])))
    bars = with_class(svg, "rect", "bar")
    heights = [float(b.get("height", "nan")) for b in bars]
    assert heights[0] > 0
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.02)
    assert heights[2] == pytest.approx(4 * heights[0], abs=0.02)
    assert heights[3] == 0
    bottoms = {round(float(b.get("y", "0")) + float(b.get("height", "0")), 1) for b in bars}
    assert len(bottoms) == 1  # all stand on the zero line
    values = ["".join(t.itertext()) for t in with_class(svg, "text", "value")]
    assert values == ["10", "20", "40", "0"]


def test_grouped_bars_have_a_colour_per_series_and_a_legend() -> None:
    svg = svg_of(parse(bar_chart("Visits", MONTHS, [("Video", [1, 2, 3]), ("Group", [4, 5, 6])])))
    bars = with_class(svg, "rect", "bar")
    assert len(bars) == 6
    assert [b.get("fill") for b in bars] == [PALETTE[0]] * 3 + [PALETTE[1]] * 3
    swatches = with_class(svg, "rect", "legend-swatch")
    assert [s.get("fill") for s in swatches] == [PALETTE[0], PALETTE[1]]
    # a single series needs no legend
    single = svg_of(parse(bar_chart("Visits", MONTHS, [("Video", [1, 2, 3])])))
    assert with_class(single, "rect", "legend-swatch") == []


def test_y_axis_has_four_or_five_round_ticks() -> None:
    svg = svg_of(parse(bar_chart("Visits", MONTHS, [("Visits", [3, 17, 42])])))
    ticks = ["".join(t.itertext()) for t in with_class(svg, "text", "tick")]
    assert ticks == ["0", "20", "40", "60"]
    for low, high in [(0, 1), (0, 7), (0, 10), (0, 42), (0, 1234), (-100, 100), (-30, 60),
                      (-5, -1), (0, 0), (0, 0.01), (3.3, 3.3), (0, 99.9)]:  # fmt: skip
        ticks_ = nice_ticks(low, high)
        assert 4 <= len(ticks_) <= 5, (low, high, ticks_)
        assert 0 in ticks_
        assert ticks_[0] <= min(low, 0) and ticks_[-1] >= max(high, 0)
        steps = {round(b - a, 9) for a, b in pairwise(ticks_)}
        assert len(steps) == 1
        step = steps.pop()
        assert re.fullmatch(r"(1|25?|5)0*|2\.5|0\.[125]", number(step)), step


def test_line_chart_puts_negative_values_under_the_zero_line() -> None:
    values: list[float] = [-40, 0, 25, -100, 100]
    svg = svg_of(
        parse(line_chart("NPS", ["J", "F", "M", "A", "M"], [("NPS", values)], unit="points"))
    )
    (zero,) = with_class(svg, "line", "zero-line")
    zero_y = float(zero.get("y1", "nan"))
    assert zero.get("y2") == zero.get("y1")
    points = with_class(svg, "circle", "point")
    assert len(points) == 5
    for point, value in zip(points, values, strict=True):
        y = float(point.get("cy", "nan"))
        if value < 0:
            assert y > zero_y
        elif value > 0:
            assert y < zero_y
        else:
            assert y == pytest.approx(zero_y, abs=0.1)
    # -100 and 100 are as far from the zero line
    assert zero_y - float(points[4].get("cy", "0")) == pytest.approx(
        float(points[3].get("cy", "0")) - zero_y, abs=0.02
    )
    (line,) = with_class(svg, "polyline", "line")
    assert len((line.get("points") or "").split()) == 5
    ticks = ["".join(t.itertext()) for t in with_class(svg, "text", "tick")]
    assert ticks == ["-100", "-50", "0", "50", "100"]


def test_bar_chart_draws_negative_bars_down_from_zero() -> None:
    svg = svg_of(parse(bar_chart("Change", ["a", "b"], [("Change", [-10, 10])])))
    (zero,) = with_class(svg, "line", "zero-line")
    zero_y = float(zero.get("y1", "nan"))
    down, up = with_class(svg, "rect", "bar")
    assert float(down.get("y", "nan")) == pytest.approx(zero_y, abs=0.1)
    assert float(up.get("y", "nan")) + float(up.get("height", "nan")) == pytest.approx(
        zero_y, abs=0.1
    )
    assert float(down.get("height", "0")) == pytest.approx(float(up.get("height", "1")))


def test_palette_contrast_against_white() -> None:
    assert relative_luminance("#ffffff") == pytest.approx(1.0)
    assert relative_luminance("#000000") == pytest.approx(0.0)
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio("#ffffff", "#767676") == contrast_ratio("#767676", "#ffffff")
    assert len(set(PALETTE)) == len(PALETTE) >= 4
    for colour in PALETTE:
        assert re.fullmatch(r"#[0-9a-f]{6}", colour)
        assert contrast_ratio(colour, "#ffffff") >= 3.0, colour


def test_ids_are_unique_across_calls() -> None:
    first = svg_of(parse(bar_chart("A", MONTHS, [("x", [1, 2, 3])])))
    second = svg_of(parse(line_chart("A", MONTHS, [("x", [1, 2, 3])])))
    third = svg_of(parse(bar_chart("A", MONTHS, [("x", [1, 2, 3])])))
    ids = [
        element.get("id")
        for svg in (first, second, third)
        for element in svg.iter()
        if element.get("id")
    ]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert len({svg.get("aria-labelledby") for svg in (first, second, third)}) == 3


@pytest.mark.parametrize("draw", [bar_chart, line_chart])
def test_empty_data_renders_a_no_data_text(draw: Callable[..., str]) -> None:
    cases: list[tuple[list[str], list[tuple[str, list[float]]]]] = [
        ([], []),
        ([], [("NPS", [])]),
        (MONTHS, []),
    ]
    for labels, series in cases:
        figure = parse(draw("NPS <2026>", labels, series))
        assert figure.find(f"{SVG}svg") is None and figure.find("table") is None
        assert "".join(figure.itertext()) == "NPS <2026>No data yet"
    figure = parse(draw("NPS", [], [], empty_text="Ei vielä vastauksia & <tyhjä>"))
    paragraph = figure.find("p")
    assert paragraph is not None and paragraph.text == "Ei vielä vastauksia & <tyhjä>"


def test_refused_data_say_why() -> None:
    with pytest.raises(ValueError, match="series 'x' has 2 values for 3 labels"):
        bar_chart("T", MONTHS, [("x", [1, 2])])
    with pytest.raises(ValueError, match="not a finite number"):
        line_chart("T", MONTHS, [("x", [1, float("nan"), 2])])
    with pytest.raises(ValueError, match="at most 6 series"):
        bar_chart("T", ["a"], [(str(i), [1.0]) for i in range(7)])
    with pytest.raises(ValueError, match="240 to 4000 wide"):
        bar_chart("T", ["a"], [("x", [1.0])], width=10)


def test_long_labels_are_turned() -> None:
    labels = [f"Child health clinic {i}" for i in range(8)]
    svg = svg_of(parse(bar_chart("By unit", labels, [("NPS", [float(i) for i in range(8)])])))
    turned = with_class(svg, "text", "label")
    assert len(turned) == 8
    assert all((t.get("transform") or "").startswith("rotate(-40") for t in turned)
