"""Chart geometry of the server-side SVG charts: scales, empty data, one point, gaps."""

from __future__ import annotations

import pytest

from service.web.charts import Frame, Scale, bar_chart, line_chart, nice_ceiling, slot_centres, ticks, value_scale


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 1),
        (-3, 1),
        (float("nan"), 1),
        (0.3, 0.5),
        (1, 1),
        (1.01, 2),
        (2.2, 2.5),
        (3, 5),
        (7, 10),
        (10, 10),
        (11, 20),
        (48, 50),
        (120, 200),
    ],
)
def test_the_axis_top_is_a_round_number_at_or_above_the_largest_value(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)


def test_a_scale_maps_zero_to_the_baseline_and_the_top_to_the_frame_top() -> None:
    frame = Frame(320, 160)
    scale = value_scale([3.0, None, 7.0], frame)
    assert scale.top == 10
    assert scale(0) == frame.baseline == 138
    assert scale(10) == frame.top == 14
    assert scale(5) == 76  # half-way
    assert scale(-1) == scale(0) and scale(99) == scale(10)  # values outside the axis stay on it


def test_ticks_are_zero_half_and_top() -> None:
    scale = Scale(top=50, low_y=100, high_y=0)
    assert [(t.value, t.y) for t in ticks(scale)] == [(0, 100), (25, 50), (50, 0)]


def test_counts_have_whole_number_ticks_only() -> None:
    assert [t.value for t in ticks(Scale(top=5, low_y=100, high_y=0), counts=True)] == [0, 5]
    assert [t.value for t in ticks(Scale(top=10, low_y=100, high_y=0), counts=True)] == [0, 5, 10]
    assert [t.value for t in bar_chart([("a", 1)], counts=True).ticks] == [0, 1]


def test_slots_are_centred_across_the_plot() -> None:
    frame = Frame(136, 100, left=36, right=0)  # a plot 100 wide
    assert slot_centres(4, frame) == (48.5, 73.5, 98.5, 123.5)
    assert slot_centres(1, frame) == (86.0,)
    assert slot_centres(0, frame) == ()


def test_bars_stand_on_the_baseline_proportional_to_their_value() -> None:
    chart = bar_chart([("lun", 2), ("mar", 0), ("mer", 5)], width=336, height=160)
    base = chart.frame.baseline
    low, empty, high = chart.bars
    assert all(bar.y + bar.height == pytest.approx(base) for bar in chart.bars)
    assert empty.height == 0
    assert high.height == pytest.approx(base - chart.frame.top)  # 5 is the axis top
    assert low.height == pytest.approx(high.height * 2 / 5, abs=0.1)
    assert low.width == high.width == pytest.approx(292 / 3 * 0.7, abs=0.1)
    assert low.centre < empty.centre < high.centre
    assert low.x == pytest.approx(low.centre - low.width / 2, abs=0.1)


def test_a_bar_chart_of_nothing_or_zeros_has_an_axis_and_no_height() -> None:
    empty = bar_chart([])
    assert empty.bars == () and [t.value for t in empty.ticks] == [0, 0.5, 1]
    zeros = bar_chart([("a", 0), ("b", 0)])
    assert [bar.height for bar in zeros.bars] == [0, 0]


def test_one_point_is_a_dot_in_the_middle_without_a_line() -> None:
    chart = line_chart([("16/11", 5.0)], width=320)
    (point,) = chart.points
    assert point.x == pytest.approx(36 + (320 - 36 - 8) / 2)
    assert point.y == chart.frame.top  # 5 is the axis top
    assert chart.segments == ()
    assert (chart.first_label, chart.last_label) == ("16/11", "16/11")
    assert not chart.empty


def test_missing_values_leave_gaps_and_lone_values_stay_dots() -> None:
    chart = line_chart([("a", 1.0), ("b", 2.0), ("c", None), ("d", 4.0), ("e", None), ("f", 3.0), ("g", 1.0)])
    assert [p.label for p in chart.points] == ["a", "b", "d", "f", "g"]
    assert len(chart.segments) == 2  # a-b and f-g; d stands alone
    first, second = chart.segments
    assert first == f"{chart.points[0].x},{chart.points[0].y} {chart.points[1].x},{chart.points[1].y}"
    assert second.count(" ") == 1
    assert chart.ticks[-1].value == 5


def test_a_line_chart_of_no_data_is_empty() -> None:
    for values in ([], [("a", None), ("b", None)]):
        chart = line_chart(values)
        assert chart.empty and chart.segments == () and chart.ticks[-1].value == 1
    assert line_chart([]).first_label is None
