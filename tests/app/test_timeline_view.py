"""The long-file timeline: overview, detail, one lane of boxes per label, playhead, and the events table.

The file is a made-up 10-minute analysis with the structure of a real one (app.timeline_demo: 600 s at a 1 s
hop, 20 labels, events from core.events' rule) and a random display image: a real 10-minute analysis is too
slow for a unit test. The widgets are real and offscreen; clicks and keys go through Qt.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from app.events_table import LABEL, PEAK, EventsTable, review_text
from app.lanes import (MAX_LANES, OTHER, OTHER_COLOUR, PALETTE, event_density, format_clock, label_colours, order_lanes,
                       thumbnail)
from app.timeline_demo import analysed_file, demo_file, main as demo_main
from app.timeline_view import MIN_LANE_PX, TimelinePanel
from core.timeline import Event


@pytest.fixture(scope="module")
def long_file():
    features, _, column_s, timeline, events = demo_file(seed=0)
    image = np.random.default_rng(1).integers(0, 256, (features.num_mel_bins, 6000), dtype=np.uint8)
    return features, image, column_s, timeline, events


@pytest.fixture
def panel(qtbot, long_file):
    panel = TimelinePanel()
    qtbot.addWidget(panel)
    panel.resize(1100, 700)
    panel.set_file(*long_file)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def pixel_of(panel: TimelinePanel, plot, t_s: float, y: float) -> QtCore.QPoint:
    """Viewport pixel of data point (t_s, y) of one of the panel's plots."""
    scene = plot.getViewBox().mapViewToScene(QtCore.QPointF(t_s, y))
    return panel.graphics.mapFromScene(scene)


def click(qtbot, panel: TimelinePanel, plot, t_s: float, y: float) -> None:
    qtbot.mouseClick(panel.graphics.viewport(), QtCore.Qt.MouseButton.LeftButton,
                     pos=pixel_of(panel, plot, t_s, y))


# ---- the pieces, without a window ---------------------------------------------------------------------

def test_label_colours_are_distinct_and_keep_to_their_label():
    ids = sorted(f"/m/{i:04x}" for i in range(len(PALETTE)))
    colours = label_colours(ids)
    assert len({c.name() for c in colours.values()}) == len(PALETTE)       # 20 labels, 20 colours
    assert label_colours(reversed(ids)) == colours                          # the order given does not matter
    fewer = label_colours(ids[:7])                   # another file with fewer labels: theirs do not change
    assert all(fewer[i] == colours[i] for i in ids[:7])
    assert len(label_colours(f"/m/{i:04x}" for i in range(30))) == 30      # beyond the palette: repeats


def test_format_clock_reads_as_minutes_and_seconds():
    assert format_clock(83.44) == "1:23.4"
    assert format_clock(59.96) == "1:00.0"                   # rounds before it splits: never 0:60.0
    assert format_clock(600, 0) == "10:00"
    assert format_clock(3723.25) == "1:02:03.2"


def test_lane_order_and_density_count_what_is_on():
    events = [Event(0, 0.0, 10.0, 0.9, 0.5, 5.0), Event(1, 5.0, 7.0, 0.5, 0.4, 6.0),
              Event(1, 20.0, 30.0, 0.6, 0.4, 25.0), Event(2, 1.0, 2.0, 0.7, 0.5, 1.5)]
    assert order_lanes(events) == [1, 0, 2]                 # 12 s on, 10 s, 1 s
    assert event_density(events, 40.0, 8).tolist() == [2, 2, 0, 0, 1, 1, 0, 0]   # 5 s bins


def test_thumbnail_keeps_a_short_loud_sound():
    image = np.zeros((128, 6000), dtype=np.uint8)
    image[:, 4321] = 200                                    # one loud 0.1 s column
    small = thumbnail(image, rows=32, max_columns=2000)
    assert small.shape == (32, 2000)
    assert small[:, 4321 // 3].min() == 200 and small.sum() == 200 * 32


# ---- the panel ----------------------------------------------------------------------------------------

def test_one_lane_per_label_with_events_named_on_the_left(panel, long_file):
    _, _, _, timeline, events = long_file
    assert 90 <= len(events) <= 130
    labels = {e.label_index for e in events}
    assert [lane.label_index for lane in panel.lanes] == order_lanes(events)
    assert len(panel.lanes) == len(labels) == len(panel.lane_items)
    assert len(panel.lane_axis.texts) == len(labels)
    for text, lane in zip(panel.lane_axis.texts, panel.lanes):
        assert text.rstrip("…") == timeline.labels[lane.label_index].name[:len(text.rstrip("…"))]


def test_boxes_are_where_the_events_are(panel, long_file):
    _, _, _, _, events = long_file
    view = panel.lane_plot.getViewBox()
    drawn = []
    for k, item in enumerate(panel.lane_items):
        for polygon in item.shape().toSubpathPolygons():
            rect = view.mapSceneToView(item.mapToScene(polygon)).boundingRect()   # scene -> seconds, lanes
            assert k <= rect.top() and rect.bottom() <= k + 1
            drawn.append((k, round(rect.left(), 3), round(rect.right(), 3)))
    lane_of = {lane.label_index: k for k, lane in enumerate(panel.lanes)}
    assert sorted(drawn) == sorted((lane_of[e.label_index], e.start_s, e.end_s) for e in events)


def test_a_box_is_painted_in_its_lane_colour(panel, long_file):
    _, _, _, _, events = long_file
    image = panel.graphics.grab().toImage()
    lane = panel.lanes[0]
    widest = int(np.argmax(lane.ends_s - lane.starts_s))
    t = (lane.starts_s[widest] + lane.ends_s[widest]) / 2
    inside = pixel_of(panel, panel.lane_plot, t, 0.85)              # near the bottom of lane 0's box
    gap = pixel_of(panel, panel.lane_plot, t, 0.96)                 # under the boxes
    assert image.pixelColor(inside).name() == lane.colour.name()
    assert image.pixelColor(gap).name() != lane.colour.name()


def test_overview_region_and_detail_drive_each_other(panel):
    assert panel.visible_range() == pytest.approx((0, 600), abs=1e-6)        # a new file is shown whole
    panel.region.setRegion((100.0, 160.0))
    assert panel.visible_range() == pytest.approx((100, 160), abs=1e-6)
    panel.show_range(300.0, 330.0)
    assert panel.region.getRegion() == pytest.approx((300, 330), abs=1e-6)
    panel.lane_plot.getViewBox().scaleBy(x=0.5)                              # a wheel zoom on the lanes
    assert panel.region.getRegion() == pytest.approx((307.5, 322.5), abs=1e-6)
    assert panel.detail_plot.getViewBox().viewRange()[0] == pytest.approx([307.5, 322.5], abs=1e-6)
    panel.show_range(590.0, 640.0)                                           # kept inside the file
    assert panel.visible_range() == pytest.approx((550, 600), abs=1e-6)


def test_clicking_the_overview_centres_the_detail_there(qtbot, panel):
    panel.show_range(0, 60)
    click(qtbot, panel, panel.overview_plot, 400.0, 2.0)
    a, b = panel.visible_range()
    assert b - a == pytest.approx(60, abs=1e-6) and (a + b) / 2 == pytest.approx(400, abs=2)


def test_clicking_a_box_emits_its_event_and_empty_time_its_seconds(qtbot, panel, long_file):
    _, _, _, _, events = long_file
    panel.show_range(0, 600)
    px = panel.lane_plot.getViewBox().viewPixelSize()[0]                 # seconds per pixel
    lane = panel.lanes[2]
    starts, ends = lane.starts_s, lane.ends_s                            # a lane's events do not overlap
    order = np.argsort(starts)
    alone = [int(lane.events[k]) for j, k in enumerate(order[1:-1], 1)    # boxes 10 px clear of the others
             if starts[order[j + 1]] - ends[k] > 10 * px and starts[k] - ends[order[j - 1]] > 10 * px]
    target = alone[len(alone) // 2]
    e = events[target]
    with qtbot.waitSignal(panel.eventActivated, timeout=1000) as hit:
        click(qtbot, panel, panel.lane_plot, (e.start_s + e.end_s) / 2, 2.5)
    assert hit.args == [target] and panel.selected == target
    panel.select_event(None)
    with qtbot.waitSignal(panel.eventActivated, timeout=1000) as near:     # 2.5 px past its end still hits it
        click(qtbot, panel, panel.lane_plot, e.end_s + 2.5 * px, 2.1)
    assert near.args == [target]
    free = next(t for t in np.arange(1.0, 600.0, 7.0)
                if not ((lane.starts_s - 10 * px <= t) & (t <= lane.ends_s + 10 * px)).any())
    with qtbot.waitSignal(panel.timeClicked, timeout=1000) as at:
        click(qtbot, panel, panel.lane_plot, free, 2.5)
    assert at.args[0] == pytest.approx(free, abs=2 * px)
    with qtbot.waitSignal(panel.timeClicked, timeout=1000) as at:
        click(qtbot, panel, panel.detail_plot, 123.0, 60.0)
    assert at.args[0] == pytest.approx(123.0, abs=2 * px)


def test_hovering_a_box_names_it_and_a_double_click_acts_once(qtbot, panel, long_file):
    _, _, _, timeline, events = long_file
    lane = panel.lanes[0]
    widest = int(np.argmax(lane.ends_s - lane.starts_s))
    e = events[int(lane.events[widest])]
    qtbot.mouseMove(panel.graphics.viewport(), pixel_of(panel, panel.lane_plot, (e.start_s + e.end_s) / 2, 0.6))
    qtbot.waitUntil(lambda: panel.graphics.viewport().toolTip() != "", timeout=1000)
    tip = panel.graphics.viewport().toolTip()
    assert tip.startswith(timeline.labels[e.label_index].name) and f"peak {e.peak_score:.2f}" in tip
    qtbot.wait(50)                                   # QTest drops a second move sent in the same instant
    qtbot.mouseMove(panel.graphics.viewport(), pixel_of(panel, panel.detail_plot, 10.0, 60.0))
    qtbot.waitUntil(lambda: panel.graphics.viewport().toolTip() == "", timeout=1000)
    seen = []
    panel.timeClicked.connect(seen.append)
    at, left = pixel_of(panel, panel.detail_plot, 200.0, 60.0), QtCore.Qt.MouseButton.LeftButton
    viewport = panel.graphics.viewport()
    qtbot.mouseClick(viewport, left, pos=at)
    qtbot.mouseDClick(viewport, left, pos=at)          # what a double click sends after the first click
    qtbot.mouseRelease(viewport, left, pos=at)
    assert len(seen) == 1


def test_a_double_click_on_a_box_asks_to_play_it_once(qtbot, panel, long_file):
    events = long_file[4]
    lane = panel.lanes[0]
    widest = int(lane.events[int(np.argmax(lane.ends_s - lane.starts_s))])
    e = events[widest]
    chosen, played = [], []
    panel.eventActivated.connect(chosen.append)
    panel.eventDoubleClicked.connect(played.append)
    at, left = pixel_of(panel, panel.lane_plot, (e.start_s + e.end_s) / 2, 0.6), QtCore.Qt.MouseButton.LeftButton
    viewport = panel.graphics.viewport()
    qtbot.mouseClick(viewport, left, pos=at)
    qtbot.mouseDClick(viewport, left, pos=at)
    qtbot.mouseRelease(viewport, left, pos=at)
    assert chosen == [widest] and played == [widest]


def test_review_marks_sit_on_their_boxes_and_follow_the_peak_filter(panel, long_file):
    events = long_file[4]
    weak = min(range(len(events)), key=lambda i: events[i].peak_score)
    strong = max(range(len(events)), key=lambda i: events[i].peak_score)
    panel.set_marks({weak: "wrong", strong: "correct"})
    points = {int(p.data()): p for p in panel.mark_items.points()}
    assert set(points) == {weak, strong}
    for i, point in points.items():
        lane = next(k for k, lane in enumerate(panel.lanes) if i in lane.events)
        assert point.pos().x() == pytest.approx((events[i].start_s + events[i].end_s) / 2)
        assert lane < point.pos().y() < lane + 1                               # inside the box's lane
    assert points[weak].brush().color().name() != points[strong].brush().color().name()
    panel.set_min_peak((events[weak].peak_score + events[strong].peak_score) / 2)
    assert [int(p.data()) for p in panel.mark_items.points()] == [strong]     # a hidden box hides its mark
    with pytest.raises(ValueError, match="maybe"):
        panel.set_marks({strong: "maybe"})


def test_the_score_strip_takes_room_only_when_it_has_rows(qtbot, panel, long_file):
    timeline = long_file[3]
    detail = panel.detail_plot.getViewBox().height()
    assert panel.strip_plot.getViewBox().height() == 0 and panel.strip_rows == []
    panel.set_strip(["Dog", "Rain"], 2.06, 1.0, timeline.scores[:, :2].T)
    qtbot.waitUntil(lambda: panel.strip_plot.getViewBox().height() > 0, timeout=1000)
    line_px = QtGui.QFontMetrics(panel.font()).height()
    assert panel.strip_plot.getViewBox().height() >= 2 * line_px and panel.strip_rows == ["Dog", "Rain"]
    assert panel.detail_plot.getViewBox().height() < detail                   # taken from the detail
    assert panel.strip_image.image.shape == (2, timeline.num_windows)
    assert panel.strip_plot.getViewBox().viewRange()[0] == pytest.approx(panel.visible_range())   # x-linked
    panel.resize(1100, 560)                                  # a laptop's Files tab: the lanes keep a line each
    qtbot.waitUntil(lambda: panel.graphics.height() <= 560, timeout=1000)
    qtbot.wait(50)
    assert panel.lane_plot.getViewBox().height() / len(panel.lanes) >= MIN_LANE_PX


def test_selecting_an_event_off_screen_pans_to_it_and_keeps_the_zoom(panel, long_file):
    _, _, _, _, events = long_file
    late = max(range(len(events)), key=lambda i: events[i].start_s)
    panel.show_range(0, 40)
    panel.select_event(late)
    a, b = panel.visible_range()
    assert b - a == pytest.approx(40, abs=1e-6) or b - a >= events[late].end_s - events[late].start_s
    assert a <= events[late].start_s and events[late].end_s <= b
    assert panel.selected_box.isVisible() and panel.selected_band.isVisible()


def test_the_playhead_moves_and_pages_the_view_forward(panel):
    assert not any(line.isVisible() for line in panel.playheads)
    panel.show_range(0, 60)
    panel.set_playhead(10.0)
    assert all(line.isVisible() and line.value() == 10.0 for line in panel.playheads)
    panel.set_playhead(59.5)
    assert panel.visible_range() == pytest.approx((0, 60), abs=1e-6)        # still in view: no jump
    panel.set_playhead(60.5)
    assert panel.visible_range() == pytest.approx((60.5, 120.5), abs=1e-6)  # ran off the edge: next page
    panel.show_range(300, 360)
    panel.set_playhead(61.0)                                                 # the user looks elsewhere: stay
    assert panel.visible_range() == pytest.approx((300, 360), abs=1e-6)
    panel.set_playhead(None)
    assert not any(line.isVisible() for line in panel.playheads)


def test_the_peak_filter_hides_weak_boxes_and_their_density(panel, long_file):
    _, _, _, _, events = long_file
    strong = {i for i, e in enumerate(events) if e.peak_score >= 0.6}
    assert 0 < len(strong) < len(events)
    panel.set_min_peak(0.6)
    assert {int(i) for lane in panel.lanes for i in lane.events} == strong
    assert sum(len(item.shape().toSubpathPolygons()) for item in panel.lane_items) == len(strong)
    assert len(panel.lanes) == len({events[i].label_index for i in strong})


def test_items_drawn_are_bounded_by_lanes_not_events(qtbot, long_file):
    features, image, column_s, timeline, events = long_file
    rng = np.random.default_rng(2)
    many = []
    for label in sorted({e.label_index for e in events}):       # ten times the events, on the same labels
        starts = np.sort(rng.uniform(0, 590, 50))
        many += [Event(label, float(s), float(s) + 1.0, 0.8, 0.5, float(s) + 0.5) for s in starts]
    counts = []
    for chosen in (events, many):
        panel = TimelinePanel()
        qtbot.addWidget(panel)
        panel.set_file(features, image, column_s, timeline, chosen)
        counts.append(len(panel.lane_plot.getViewBox().addedItems))
    assert len(many) >= 10 * len(events) // 2
    assert counts[0] == counts[1] <= len(panel.lanes) + 6


def test_more_labels_than_colours_share_a_grey_last_lane(qtbot, long_file):
    features, image, column_s, timeline, _ = long_file
    events = [Event(label, 10.0 * label, 10.0 * label + 5 + 0.1 * label, 0.5 + label / 100, 0.5, 10.0 * label + 2)
              for label in range(30)]                 # label 29 is on longest: it comes first
    panel = TimelinePanel()
    qtbot.addWidget(panel)
    panel.set_file(features, image, column_s, timeline, events)
    assert len(panel.lanes) == MAX_LANES + 1 and panel.lanes[-1].label_index == OTHER
    assert [lane.label_index for lane in panel.lanes[:-1]] == list(range(29, 29 - MAX_LANES, -1))
    assert panel.lanes[-1].name == f"+ {30 - MAX_LANES} more labels"
    assert len({lane.colour.name() for lane in panel.lanes[:-1]}) == MAX_LANES       # no colour twice
    assert panel.lanes[-1].colour.name() == OTHER_COLOUR.lower()
    assert sorted(int(i) for lane in panel.lanes for i in lane.events) == list(range(30))
    panel.set_min_peak(0.6)                           # labels 10-29 remain: all with their own lanes as before
    assert [lane.label_index for lane in panel.lanes] == list(range(29, 9, -1))
    table = EventsTable()
    qtbot.addWidget(table)
    table.set_events(events, timeline)
    swatch = {table.model.index(i, LABEL).data(QtCore.Qt.ItemDataRole.DecorationRole).name() for i in range(10)}
    assert swatch == {OTHER_COLOUR.lower()}           # the table shows the shared lane's grey too


def test_bad_input_is_refused_in_one_line_and_the_shown_file_stays(panel, long_file):
    features, image, column_s, timeline, events = long_file
    before = [lane.label_index for lane in panel.lanes]
    with pytest.raises(ValueError, match=r"\(128, columns\) uint8"):
        panel.set_file(features, image.astype(np.float32), column_s, timeline, events)
    with pytest.raises(ValueError, match="label index 99"):
        panel.set_file(features, image, column_s, timeline, [dataclasses.replace(events[0], label_index=99)])
    assert [lane.label_index for lane in panel.lanes] == before and panel.events == events


def test_a_file_without_events_says_so(qtbot, long_file):
    features, image, column_s, timeline, events = long_file
    panel = TimelinePanel()
    qtbot.addWidget(panel)
    panel.set_file(features, image, column_s, timeline, [])
    assert panel.lanes == [] and panel.lane_axis.texts == ["no events"]
    panel.set_file(features, image, column_s, timeline, events)
    panel.set_min_peak(1.01)
    assert panel.lanes == [] and panel.lane_axis.texts == ["no events ≥ 1.01"]


def test_clear_empties_the_panel(panel):
    panel.set_playhead(5.0)
    panel.clear()
    assert panel.lanes == [] and panel.detail_image.image is None and panel.playhead_s is None


# ---- the events table ---------------------------------------------------------------------------------

@pytest.fixture
def table(qtbot, long_file):
    table = EventsTable(review=True)
    qtbot.addWidget(table)
    table.set_events(long_file[4], long_file[3])
    table.resize(table.sizeHint().width(), 500)
    table.show()
    qtbot.waitExposed(table)
    return table


def test_the_table_filters_by_peak_and_by_label(table, long_file):
    _, _, _, timeline, events = long_file
    assert len(table.shown_events()) == len(events) and table.count.text() == f"{len(events)} of {len(events)} events"
    with_signal = []
    table.minPeakChanged.connect(with_signal.append)
    table.min_peak.setValue(0.6)
    shown = table.shown_events()
    assert sorted(shown) == [i for i, e in enumerate(events) if e.peak_score >= 0.6]
    assert with_signal == [pytest.approx(0.6)]
    label = order_lanes(events)[0]
    table.label_filter.setCurrentIndex(table.label_filter.findData(label))
    assert table.label_filter.currentText() == timeline.labels[label].name
    assert sorted(table.shown_events()) == [i for i, e in enumerate(events)
                                            if e.peak_score >= 0.6 and e.label_index == label]
    weakest, chosen = min(table.shown_events(), key=lambda i: events[i].peak_score), []
    table.select_event(weakest)
    table.eventSelected.connect(chosen.append)
    table.min_peak.setValue(events[weakest].peak_score + 0.01)  # the current event is hidden: none is current,
    assert table.current_event() is None and chosen == []       # not a neighbour that a review key would mark


def test_the_table_sorts_by_number_not_by_text(table, long_file):
    events = long_file[4]
    table.view.sortByColumn(PEAK, QtCore.Qt.SortOrder.DescendingOrder)
    peaks = [events[i].peak_score for i in table.shown_events()]
    assert peaks == sorted(peaks, reverse=True)
    table.view.sortByColumn(0, QtCore.Qt.SortOrder.AscendingOrder)
    starts = [events[i].start_s for i in table.shown_events()]
    assert starts == sorted(starts) and starts[-1] > 100           # "10:00.0" would sort before "2:00.0" as text


def test_keys_move_activate_and_review(qtbot, table):
    view = table.view
    order = table.shown_events()
    table.select_event(order[3])
    view.setFocus()
    with qtbot.waitSignal(table.eventSelected, timeout=1000) as moved:
        qtbot.keyClick(view, QtCore.Qt.Key.Key_Down)
    assert moved.args == [order[4]]
    with qtbot.waitSignal(table.eventActivated, timeout=1000) as activated:
        qtbot.keyClick(view, QtCore.Qt.Key.Key_Return)
    assert activated.args == [order[4]]
    with qtbot.waitSignal(table.reviewRequested, timeout=1000) as review:
        qtbot.keyClick(view, QtCore.Qt.Key.Key_Y)
    assert review.args == [order[4], "correct"]
    table.set_review(order[4], "correct")
    assert table.proxy.index(4, 4).data() == "✓ correct"
    table.set_reviews({order[2]: "relabel:Dog", order[4]: "wrong"})
    assert [table.proxy.index(r, 4).data() for r in (2, 3, 4)] == ["→ Dog", "", "✗ wrong"]
    with pytest.raises(ValueError, match="verdict"):
        table.set_review(order[4], "maybe")


def test_only_keys_step_through_the_events(qtbot, table):
    """Stepping (the reviewer's keys) may play the event; a click or the panel's selection only selects."""
    order, stepped = table.shown_events(), []
    table.eventStepped.connect(stepped.append)
    view = table.view
    row_2 = view.visualRect(table.proxy.index(2, 0)).center()
    qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=row_2)
    assert table.current_event() == order[2]
    table.select_event(order[5])
    assert table.current_event() == order[5] and stepped == []
    view.setFocus()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Up)
    assert stepped == [order[4]]


def test_select_event_from_the_panel_does_not_echo(qtbot, table):
    seen = []
    table.eventSelected.connect(seen.append)
    target = table.shown_events()[40]
    table.select_event(target)
    assert table.current_event() == target and seen == []
    assert table.view.visualRect(table.view.currentIndex()).intersects(table.view.viewport().rect())


def test_the_table_is_as_wide_as_its_contents(table, long_file):
    timeline, events = long_file[3], long_file[4]
    longest = max((timeline.labels[e.label_index].name for e in events), key=len)
    needed = QtGui.QFontMetrics(table.view.font()).horizontalAdvance(longest)
    assert table.view.columnWidth(LABEL) >= needed
    assert table.minimumWidth() >= sum(table.view.columnWidth(c) for c in range(4))
    relabel = f"relabel:{longest}"                                  # a long verdict widens the Review column
    table.set_reviews({0: relabel})
    review = QtGui.QFontMetrics(table.view.font()).horizontalAdvance(review_text(relabel))
    assert table.minimumWidth() >= sum(table.view.columnWidth(c) for c in range(4)) + review


def test_a_real_analysis_shows_each_sound_in_its_lane(qtbot, scene, tmp_path):
    """The window's worker on the README scene (rooster, church bell, knock: real CC0 clips) into the panel."""
    features, image, column_s, timeline, events = analysed_file(str(scene))
    frames = 1 + (21 * 16000 - 400) // 160                                  # 25 ms frames every 10 ms
    assert image.shape == (features.num_mel_bins, frames) and column_s == pytest.approx(0.01)
    panel = TimelinePanel()
    qtbot.addWidget(panel)
    panel.set_file(features, image, column_s, timeline, events)
    lanes = {timeline.labels[lane.label_index].name: lane for lane in panel.lanes}
    for name, (start_s, end_s) in (("Crowing, cock-a-doodle-doo", (1, 6)), ("Church bell", (8, 13)),
                                   ("Knock", (15, 20))):
        lane = lanes[name]
        assert ((lane.starts_s < end_s) & (lane.ends_s > start_s)).any(), name
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(ValueError, match="broken.wav"):
        analysed_file(str(broken))


def test_the_demo_writes_a_screenshot(tmp_path):
    out = tmp_path / "timeline.png"
    assert demo_main([str(out), "--size", "1000x600"]) == 0
    image = QtGui.QImage(str(out))
    assert (image.width(), image.height()) == (1000, 600)
    colours = {image.pixelColor(x, y).name() for x in range(0, 1000, 25) for y in range(0, 600, 25)}
    assert len(colours) > 20                                        # a drawn window, not a blank one
