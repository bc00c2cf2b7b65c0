"""Export writers: exact headers and fields, quoting, 3-decimal times, atomic writes, no silent overwrite."""
from __future__ import annotations

import csv
import errno
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from core.config import EventConfig
from core.errors import ConfigError, ExportError, ExportExistsError, TaggerError
from core.export import DEFAULT_FORMATS, FORMATS, code_revision, code_version, export_combined, export_timeline
from core.labels import LabelSet
from core.timeline import Event, Timeline

LABELS = LabelSet.from_names(["Speech", "Dog", "Baby cry, infant cry"], ids=["/m/09x0r", "/m/0bt9lr", "/t/dd00002"])
CONFIG = EventConfig(on_threshold=0.5, off_threshold=0.25, label_thresholds=(("Dog", 0.8),))


def make_timeline(source: str = "clips/dog walk.wav", duration_s: float = 7.0, **kwargs) -> Timeline:
    num_windows = 6
    starts = np.arange(num_windows) * 1.0
    scores = (np.arange(num_windows * 3, dtype=np.float32).reshape(num_windows, 3) / 20.0)
    values = dict(source=source, labels=LABELS, starts_s=starts, ends_s=np.minimum(starts + 2.0, duration_s),
                  scores=scores, duration_s=duration_s, window_s=2.0, hop_s=1.0, model_name="ast-test",
                  device="cuda:0", sample_rate_hz=16000, extra={"weights": "ast-test.safetensors"})
    values.update(kwargs)
    return Timeline(**values)


EVENTS = [Event(label_index=2, start_s=3.5, end_s=6.0, peak_score=0.91234, mean_score=0.8, peak_time_s=4.0),
          Event(label_index=1, start_s=0.0, end_s=1.5, peak_score=0.95, mean_score=0.875, peak_time_s=1.0)]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def all_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_format_keys_and_file_names(tmp_path):
    assert DEFAULT_FORMATS == ("tags", "scores", "params")
    paths = export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, formats=FORMATS)
    assert [p.name for p in paths] == ["dog walk.tags.csv", "dog walk.labels.txt", "dog walk.selections.txt",
                                       "dog walk.sv.csv", "dog walk.BirdNET.csv", "dog walk.events.tsv",
                                       "dog walk.scores.csv", "dog walk.params.csv"]
    assert all_files(tmp_path) == sorted(p.name for p in paths)   # no temp files left


def test_tags_csv_columns_values_and_comma_label(tmp_path):
    [path] = export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, formats=["tags"])
    rows = read_csv(path)
    assert rows[0] == ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File", "model",
                       "overlap", "min_conf", "window", "label_index", "mean_confidence", "peak_time", "source",
                       "clock_start"]
    assert rows[1] == ["0.000", "1.500", "/m/0bt9lr", "Dog", "0.9500", "clips/dog walk.wav", "ast-test", "1.000",
                       "0.8000", "2.000", "1", "0.8750", "1.000", "file", ""]
    assert rows[2][:6] == ["3.500", "6.000", "/t/dd00002", "Baby cry, infant cry", "0.9123", "clips/dog walk.wav"]
    assert rows[2][8] == "0.5000"
    assert '"Baby cry, infant cry"' in path.read_text(encoding="utf-8")
    assert len(rows) == 3


def test_times_have_exactly_three_decimals(tmp_path):
    drift = [Event(0, 606.7000000000694, 607.1000000000001, 0.5, 0.5, 606.9000000000001)]
    timeline = make_timeline(duration_s=700.0)
    paths = export_timeline(timeline, drift, CONFIG, tmp_path, formats=["tags", "sv", "raven"])
    tags = read_csv(paths[0])[1]
    assert (tags[0], tags[1], tags[12]) == ("606.700", "607.100", "606.900")
    assert read_csv(paths[1])[1][:3] == ["606.700", "0.5000", "0.400"]
    text = "".join(p.read_text() for p in paths)
    assert "0000000" not in text


def test_live_timeline_clock_start_with_utc_offset_and_live_stem(tmp_path):
    clock = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    timeline = make_timeline(source="live:USB Mic", kind="mic", clock_start=clock)
    [path] = export_timeline(timeline, EVENTS, CONFIG, tmp_path, formats=["tags"])
    assert path.name == "live.tags.csv"
    rows = read_csv(path)
    assert [r[13] for r in rows[1:]] == ["mic", "mic"]
    assert [r[14] for r in rows[1:]] == ["2024-05-01T12:00:00.000+02:00", "2024-05-01T12:00:03.500+02:00"]


def test_audacity_raven_sv_birdnet_dcase_layouts(tmp_path):
    paths = export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, stem="x",
                            formats=["audacity", "raven", "sv", "birdnet", "dcase"])
    audacity, raven, sv, birdnet, dcase = paths
    assert read_tsv(audacity) == [["0.000", "1.500", "Dog (0.95)"], ["3.500", "6.000", "Baby cry, infant cry (0.91)"]]
    assert read_tsv(raven) == [
        ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
         "Common Name", "Scientific Name", "Confidence", "Begin Path", "File Offset (s)"],
        ["1", "Spectrogram 1", "1", "0.000", "1.500", "0.000", "8000.000", "Dog", "/m/0bt9lr", "0.9500",
         "clips/dog walk.wav", "0.000"],
        ["2", "Spectrogram 1", "1", "3.500", "6.000", "0.000", "8000.000", "Baby cry, infant cry", "/t/dd00002",
         "0.9123", "clips/dog walk.wav", "3.500"]]
    assert read_csv(sv) == [["TIME", "VALUE", "DURATION", "LABEL"], ["0.000", "0.9500", "1.500", "Dog"],
                            ["3.500", "0.9123", "2.500", "Baby cry, infant cry"]]
    assert read_csv(birdnet) == [["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File"],
                                 ["0.000", "1.500", "/m/0bt9lr", "Dog", "0.9500", "clips/dog walk.wav"],
                                 ["3.500", "6.000", "/t/dd00002", "Baby cry, infant cry", "0.9123", "clips/dog walk.wav"]]
    assert read_tsv(dcase) == [["filename", "onset", "offset", "event_label"],
                               ["clips/dog walk.wav", "0.000", "1.500", "Dog"],
                               ["clips/dog walk.wav", "3.500", "6.000", "Baby cry, infant cry"]]


def test_tabs_and_newlines_in_names_do_not_break_tsv(tmp_path):
    labels = LabelSet.from_names(["Tab\there", "Line\nbreak", "x"])
    timeline = make_timeline(labels=labels)
    events = [Event(0, 0.0, 1.0, 0.9, 0.9, 0.5), Event(1, 1.0, 2.0, 0.9, 0.9, 1.5)]
    [path] = export_timeline(timeline, events, EventConfig(), tmp_path, formats=["dcase"])
    assert [row[3] for row in read_tsv(path)[1:]] == ["Tab here", "Line break"]


def test_scores_csv_has_every_label_and_window(tmp_path):
    timeline = make_timeline(duration_s=6.5)
    [path] = export_timeline(timeline, [], CONFIG, tmp_path, formats=["scores"])
    rows = read_csv(path)
    assert rows[0] == ["Start (s)", "End (s)", "Speech", "Dog", "Baby cry, infant cry"]
    assert len(rows) == 1 + 6
    assert rows[1] == ["0.000", "2.000", "0.0000", "0.0500", "0.1000"]
    assert rows[6] == ["5.000", "6.500", "0.7500", "0.8000", "0.8500"]


def test_params_csv_rows(tmp_path):
    [path] = export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, formats=["params"])
    rows = read_csv(path)
    assert rows[0] == ["name", "value"]
    params = dict(rows[1:])
    assert len(params) == len(rows) - 1
    expected = {"model": "ast-test", "window_s": "2.000", "hop_s": "1.000", "on_threshold": "0.5",
                "off_threshold": "0.25", "median_windows": "3", "min_duration_s": "0.000", "merge_gap_s": "1.000",
                "threshold:/m/0bt9lr": "0.8", "device": "cuda:0", "sample_rate_hz": "16000", "source": "file",
                "duration_s": "7.000", "weights": "ast-test.safetensors"}
    assert {k: params[k] for k in expected} == expected
    assert params["code_version"] == code_version() != ""


def test_code_revision_is_one_form_for_exports_and_model_files(monkeypatch):
    """Exports and model-file provenance record the same revision: the commit, '-dirty' if modified."""
    import subprocess
    from training import export as training_export
    code_revision.cache_clear()
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert code_revision() == training_export.code_revision() == code_version()
    assert code_revision().removesuffix("-dirty") == head
    monkeypatch.setenv("CODE_REVISION", "abc123")      # a copy without git data (GPU machine) is told
    code_revision.cache_clear()
    assert code_revision() == "abc123"
    code_revision.cache_clear()


def test_existing_target_raises_and_writes_nothing(tmp_path):
    (tmp_path / "dog walk.scores.csv").write_text("keep")
    with pytest.raises(ExportExistsError, match="dog walk.scores.csv") as info:
        export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path)
    assert "--force" in str(info.value) and "overwrite=True" in str(info.value)
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, TaggerError)
    assert all_files(tmp_path) == ["dog walk.scores.csv"]
    assert (tmp_path / "dog walk.scores.csv").read_text() == "keep"


def test_overwrite_true_replaces(tmp_path):
    (tmp_path / "dog walk.scores.csv").write_text("old")
    paths = export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, overwrite=True)
    assert read_csv(paths[1])[0][:2] == ["Start (s)", "End (s)"]
    assert all_files(tmp_path) == sorted(p.name for p in paths)


@pytest.mark.parametrize("overwrite", [False, True])
def test_failed_rename_of_second_file_keeps_no_part_of_the_set(tmp_path, monkeypatch, overwrite):
    """Defect 10 of issue 10: a failure between two renames left tags.csv without scores/params."""
    if overwrite:
        for suffix in (".tags.csv", ".scores.csv", ".params.csv"):
            (tmp_path / f"dog walk{suffix}").write_text("old" + suffix)
    real_replace, real_link, calls = os.replace, os.link, []

    def fail_second(real):
        def rename(src, dst, **kwargs):
            if str(src).endswith(".tmp") and not str(dst).endswith(".tmp"):   # a temp renamed into place
                calls.append(dst)
                if len(calls) == 2:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(src, dst, **kwargs)
        return rename

    monkeypatch.setattr(os, "replace", fail_second(real_replace))
    monkeypatch.setattr(os, "link", fail_second(real_link))
    with pytest.raises(ExportError, match="dog walk.scores.csv") as info:
        export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, overwrite=overwrite)
    assert os.strerror(errno.ENOSPC) in str(info.value) and "Nothing of this export was kept" in str(info.value)
    if overwrite:     # the previous set, unchanged
        assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
            f"dog walk{s}": "old" + s for s in (".tags.csv", ".scores.csv", ".params.csv")}
    else:
        assert all_files(tmp_path) == []


def test_disk_full_while_writing_leaves_nothing(tmp_path, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(ExportError, match="dog walk.sv.csv"):
        export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, formats=["tags", "sv", "dcase"])
    assert all_files(tmp_path) == []


def test_interrupt_while_writing_leaves_nothing(tmp_path, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KeyboardInterrupt):
        export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path)
    assert all_files(tmp_path) == []


def test_unknown_format_and_label_key_raise_config_error_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="raven"):
        export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, formats=["tags", "excel"])
    with pytest.raises(ConfigError, match="Speech"):
        export_timeline(make_timeline(), EVENTS, EventConfig(label_thresholds=(("Cat", 0.9),)), tmp_path)
    with pytest.raises(ConfigError):
        export_timeline(make_timeline(), EVENTS, CONFIG, tmp_path, stem="../escape")
    assert all_files(tmp_path) == []


def test_missing_out_dir_is_created(tmp_path):
    out_dir = tmp_path / "a" / "b"
    paths = export_timeline(make_timeline(), EVENTS, CONFIG, out_dir, formats=["tags"])
    assert paths == [out_dir / "dog walk.tags.csv"] and paths[0].is_file()


def two_files():
    first = make_timeline(source="a.wav", duration_s=7.0)
    second = make_timeline(source="b.wav", duration_s=5.25, sample_rate_hz=32000)
    return [(first, EVENTS), (second, [Event(0, 1.0, 2.5, 0.7, 0.6, 2.0)])]


def test_combined_raven_times_run_on_across_files(tmp_path):
    [path] = export_combined(two_files(), CONFIG, tmp_path, formats=["raven"])
    assert path.name == "combined.selections.txt"
    rows = read_tsv(path)
    assert rows[0][0] == "Selection" and len(rows) == 4
    assert [(r[0], r[3], r[4], r[6], r[10], r[11]) for r in rows[1:]] == [
        ("1", "0.000", "1.500", "8000.000", "a.wav", "0.000"),
        ("2", "3.500", "6.000", "8000.000", "a.wav", "3.500"),
        ("3", "8.000", "9.500", "16000.000", "b.wav", "1.000")]


def test_combined_tables_have_one_header_and_rows_of_every_file(tmp_path):
    tags, scores, params = export_combined(two_files(), CONFIG, tmp_path, stem="batch")
    tag_rows = read_csv(tags)
    assert tag_rows[0][0] == "Start (s)" and sum(r[0] == "Start (s)" for r in tag_rows) == 1
    assert [(r[0], r[5]) for r in tag_rows[1:]] == [("0.000", "a.wav"), ("3.500", "a.wav"), ("1.000", "b.wav")]
    score_rows = read_csv(scores)
    assert score_rows[0] == ["File", "Start (s)", "End (s)", "Speech", "Dog", "Baby cry, infant cry"]
    assert [r[0] for r in score_rows[1:]] == ["a.wav"] * 6 + ["b.wav"] * 6
    param_rows = read_csv(params)
    assert param_rows[0] == ["name", "value", "file"]
    assert ["duration_s", "7.000", "a.wav"] in param_rows and ["duration_s", "5.250", "b.wav"] in param_rows


def test_combined_scores_need_the_same_labels(tmp_path):
    items = two_files()
    other = make_timeline(source="c.wav", labels=LabelSet.from_names(["x", "y", "z"]))
    with pytest.raises(ExportError, match="c.wav"):
        export_combined(items + [(other, [])], CONFIG, tmp_path)
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("fmt", ["audacity", "sv"])
def test_combined_audacity_and_sv_are_refused_for_several_files(tmp_path, fmt):
    """Issue 10, defect 14: without a file column, several recordings would share one timeline."""
    with pytest.raises(ConfigError, match=f"{fmt}.*no file column"):
        export_combined(two_files(), CONFIG, tmp_path, formats=["tags", fmt])
    assert all_files(tmp_path) == []
    [path] = export_combined(two_files()[:1], CONFIG, tmp_path, formats=[fmt])   # one file: its own timeline
    assert path.name == f"combined{FORMATS[fmt]}"


# ---- CSV injection (issue 10, defect 3) --------------------------------------------------------------

HOSTILE = ["=HYPERLINK(\"http://x.invalid\",\"ok\")", "+1+cmd", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]
DANGER = ("=", "+", "-", "@", "\t", "\r")


def cells(path: Path) -> list[str]:
    if path.suffix == ".csv":
        return [c for row in read_csv(path) for c in row]
    return [c for line in path.read_text(encoding="utf-8").split("\n") for c in line.split("\t")]


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("combined", [False, True])
def test_formula_cells_are_neutralised_in_every_format_and_numbers_stay_numbers(tmp_path, combined):
    labels = LabelSet.from_names(HOSTILE, ids=["=id" + str(i) for i in range(len(HOSTILE))])
    timeline = make_timeline(source="=cmd|' /C calc'!A0.wav", labels=labels, model_name="@model", device="-cpu",
                             scores=np.full((6, len(HOSTILE)), 0.5, np.float32),
                             extra={"gain_db": -3.5, "note": "+note", "=key": 1})
    events = [Event(i, float(i), i + 0.5, 0.9, 0.8, i + 0.25) for i in range(len(HOSTILE))]
    formats = [k for k in FORMATS if not (combined and k in ("audacity", "sv"))]
    if combined:
        paths = export_combined([(timeline, events)], EventConfig(), tmp_path, formats=formats)
    else:
        paths = export_timeline(timeline, events, EventConfig(), tmp_path, formats=formats)
    for path in paths:
        for cell in cells(path):
            assert not cell.startswith(DANGER) or is_number(cell), (path.name, cell)
    tags = read_csv(paths[0])
    assert [r[3] for r in tags[1:]] == ["'" + n for n in HOSTILE[:4]] + ["'\tTab", "'\nCR"]   # CR: a quoted LF
    assert tags[1][2] == "'=id0" and tags[1][5] == "'=cmd|' /C calc'!A0.wav" and tags[1][6] == "'@model"
    params = {r[0]: r[1] for r in read_csv(paths[-1])[1:]}
    assert params["gain_db"] == "-3.5" and params["note"] == "'+note" and params["'=key"] == "1"
    assert params["device"] == "'-cpu"
    scores_header = read_csv(paths[-2])[0]
    assert scores_header[-len(HOSTILE):] == ["'" + n for n in HOSTILE[:4]] + ["'\tTab", "'\nCR"]


def test_negative_numbers_are_not_quoted(tmp_path):
    [path] = export_timeline(make_timeline(extra={"offset_s": -1.25, "count": -3}), EVENTS, CONFIG, tmp_path,
                             formats=["params"])
    params = dict(read_csv(path)[1:])
    assert (params["offset_s"], params["count"]) == ("-1.25", "-3")
