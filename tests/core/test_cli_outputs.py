"""`main.py analyze` output safety: exclusive, all-or-nothing export sets; one name per input; honest lines.

Real files and real processes: two concurrent runs into one folder, SIGINT/SIGTERM/kill -9 during the export
(the export is slowed down by a wrapper that makes fsync slow, as on a busy disk).
"""
from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.cli import main

ROOT = Path(__file__).resolve().parents[2]

# The real entry point with a slow fsync; prints MARK on stderr when fsync is called the $MARK_AT-th time.
# With $BARRIER two such processes meet at the start and before every 4th fsync (the first file of each export
# set, waiting at most 0.2 s), so that they write the same set at the same time; $JITTER then makes their fsync times random, as on a busy disk.
SLOW_CLI = f"""
import os, random, sys, time
sys.path.insert(0, {str(ROOT)!r})
real_fsync, delay = os.fsync, float(os.environ.get("SLOW_FSYNC_S", "0"))
mark_at, calls = int(os.environ.get("MARK_AT", "0")), [0]
barrier, me = os.environ.get("BARRIER"), os.environ.get("ME", "0")
def meet(n, wait_s=0.2):
    open(os.path.join(barrier, me + "-" + str(n)), "w").close()
    other = os.path.join(barrier, str(1 - int(me)) + "-" + str(n))
    end = time.monotonic() + wait_s
    while not os.path.exists(other) and time.monotonic() < end:
        time.sleep(0.001)
def fsync(fd):
    calls[0] += 1
    if calls[0] == mark_at:
        sys.stderr.write("MARK\\n"); sys.stderr.flush()
    if barrier and calls[0] % 4 == 1:
        meet(calls[0])
    time.sleep(delay * (2 * random.random() if os.environ.get("JITTER") else 1))
    return real_fsync(fd)
os.fsync = fsync
from core.cli import main
if barrier:
    meet("start", 60)
sys.exit(main(sys.argv[1:]))
"""


def slow_cli(*args: str, delay_s: float, mark_at: int = 0, barrier: Path | None = None, me: int = 0,
             **kwargs) -> subprocess.Popen:
    env = {**os.environ, "SLOW_FSYNC_S": str(delay_s), "MARK_AT": str(mark_at), "OMP_NUM_THREADS": "1",
           "JITTER": "1" if barrier else "", "BARRIER": str(barrier or ""), "ME": str(me)}
    return subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for_mark(proc: subprocess.Popen, timeout_s: float = 120.0) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.strip() == "MARK":
            return lines
    proc.kill()
    raise AssertionError(f"no MARK from the slowed CLI: {''.join(lines)}")


def make_clips(folder: Path, count: int, seconds: float = 2.5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:02d}.wav"
        sf.write(path, (0.3 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
        paths.append(path)
    return paths


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def set_hop(out: Path, stem: str) -> float:
    """The hop of one export set, checked to be the same in its params, scores and tags files."""
    params = dict(read_csv(out / f"{stem}.params.csv")[1:])
    hop = float(params["hop_s"])
    starts = [float(r[0]) for r in read_csv(out / f"{stem}.scores.csv")[1:]]
    assert starts[1] - starts[0] == pytest.approx(hop), f"{stem}: scores of another run than params"
    window = float(params["window_s"])
    for row in read_csv(out / f"{stem}.tags.csv")[1:]:
        assert float(row[7]) == pytest.approx(window - hop), f"{stem}: tags of another run than params"
    return hop


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.mark.parametrize("force", [False, True])
def test_two_processes_into_one_out_never_mix_sets(tiny_hf_dir, tmp_path, force):
    clips = make_clips(tmp_path / "in", 20)
    out = tmp_path / "out"
    (barrier := tmp_path / "barrier").mkdir()
    hops = ("0.5", "1")
    procs = [slow_cli("analyze", str(tmp_path / "in"), "--model", str(tiny_hf_dir), "--out", str(out), "--quiet",
                      "--hop", hop, "--threshold", "0.05", *(["--force"] if force else []), delay_s=0.03,
                      barrier=barrier, me=me)
             for me, hop in enumerate(hops)]
    results = [p.communicate(timeout=600) for p in procs]
    errs = [err for _, err in results]
    assert "Traceback" not in "".join(errs), errs
    claimed: dict[str, list[float]] = {}
    for hop, err in zip(hops, errs):
        for line in err.splitlines():
            if m := re.match(r"^(.*clip\d\d\.wav): \d+ events in \d+ windows -> ", line):
                claimed.setdefault(Path(m[1]).stem, []).append(float(hop))
            elif "clip" in line:
                assert line.startswith("error: ") and "already exist" in line, line
    for clip in clips:
        hop = set_hop(out, clip.stem)           # complete and from one run
        if force:
            assert sorted(claimed[clip.stem]) == [0.5, 1.0]
        else:                                    # exactly one run says it wrote it, and it is that one
            assert claimed[clip.stem] == [hop], (clip.stem, claimed.get(clip.stem), errs)
    if not force:
        lost = [sum(1 for line in err.splitlines() if "already exist" in line) for err in errs]
        assert sum(lost) == len(clips)
        assert [p.returncode for p in procs] == [1 if n else 0 for n in lost]
    assert leftovers(out) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_export_leaves_no_partial_set_and_rerun_needs_no_force(tiny_hf_dir, esc50_clip, tmp_path,
                                                                            sig):
    out = tmp_path / "out"
    args = ["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(out), "--quiet"]
    proc = slow_cli(*args, delay_s=2.0, mark_at=2)   # the second file of the set is being written
    wait_for_mark(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, 143) and "interrupted" in err and "Traceback" not in err, err
    assert sorted(p.name for p in out.iterdir()) == []        # no tags.csv alone, no temp, no lock
    assert main(args) == 0
    assert len(list(out.iterdir())) == 3



@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_clips_are_written_leaves_none_of_them(tiny_hf_dir, esc50_clip, tmp_path, sig):
    """`clips` writes a file's clips as one set: SIGTERM, like Ctrl-C, rolls it back (it used to kill the
    process in the middle of the set, leaving temp files and a lock)."""
    out = tmp_path / "clips"
    args = ["clips", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(out)]
    proc = slow_cli(*args, delay_s=2.0, mark_at=2)   # the second clip of the set is being written
    wait_for_mark(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert leftovers(out) == [] and not list(out.glob("*.flac"))

def test_kill_9_during_export_leaves_temp_that_the_rerun_removes(tiny_hf_dir, esc50_clip, tmp_path):
    out = tmp_path / "out"
    args = ["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(out), "--quiet"]
    proc = slow_cli(*args, delay_s=5.0, mark_at=1)
    wait_for_mark(proc)
    proc.kill()
    proc.wait(timeout=60)
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")]   # what a crash leaves
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{esc50_clip.stem}{suffix}" for suffix in (".tags.csv", ".scores.csv", ".params.csv"))


def test_same_stem_in_one_folder_keeps_both_results(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.flac").write_bytes(esc50_clip.read_bytes())
    sf.write(folder / "x.wav", np.zeros(16000, np.float32), 16000)
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "--model", str(tiny_hf_dir), "--out", str(out), "--force", "--quiet"]) == 0
    assert float(dict(read_csv(out / "x.flac.params.csv")[1:])["duration_s"]) == 5.0
    assert float(dict(read_csv(out / "x.wav.params.csv")[1:])["duration_s"]) == 1.0
    assert not (out / "x.tags.csv").exists()
    err = capsys.readouterr().err
    assert "x.flac.*" in err and "x.wav.*" in err     # the user is told the names


def test_input_named_combined_does_not_collide_with_the_combined_tables(tiny_hf_dir, esc50_clip, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "combined.flac").write_bytes(esc50_clip.read_bytes())
    (folder / "dog.flac").write_bytes(esc50_clip.read_bytes())
    assert main(["analyze", str(folder), "--model", str(tiny_hf_dir), "--out", str(folder), "--combined",
                 "--force", "--quiet"]) == 0
    assert read_csv(folder / "combined.flac.tags.csv")[0][0] == "Start (s)"
    assert read_csv(folder / "combined.params.csv")[0] == ["name", "value", "file"]


def test_same_input_twice_is_analysed_once(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(esc50_clip), str(esc50_clip), str(esc50_clip.parent / "." / esc50_clip.name),
                 "--model", str(tiny_hf_dir), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count(" events in ") == 1 and "error" not in err
    assert len(list(out.iterdir())) == 3


def test_same_name_from_two_folders_into_one_out_is_refused_before_work(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.flac").write_bytes(esc50_clip.read_bytes())
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "a" / "x.flac"), str(tmp_path / "b" / "x.flac"),
                 "--model", str(tiny_hf_dir), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "would both write" in err and err.count("\n") <= 2
    assert not out.exists()


# ---- folders (defect 11) ------------------------------------------------------------------------

@pytest.fixture
def unreadable(monkeypatch):
    """Make folders unreadable as for a user without permission (root ignores chmod, so simulate EACCES)."""
    locked: list[str] = []
    real_stat, real_scandir = os.stat, os.scandir

    def denied(path) -> bool:
        p = os.path.abspath(os.fsdecode(path)) if not isinstance(path, int) else ""
        return any(p != d and p.startswith(d + os.sep) for d in locked)

    def stat(path, *a, **k):
        if denied(path):
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_stat(path, *a, **k)

    def scandir(path="."):
        if not isinstance(path, int) and (os.path.abspath(os.fsdecode(path)) in locked or denied(path)):
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "scandir", scandir)

    def lock(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0)             # the real thing where it works; the patches give the same errors
        locked.append(os.path.abspath(folder))
        return folder
    yield lock
    for folder in locked:
        os.chmod(folder, 0o755)


def test_file_in_unreadable_folder_fails_alone(tiny_hf_dir, esc50_clip, tmp_path, capsys, unreadable):
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "x.flac").write_bytes(esc50_clip.read_bytes())
    unreadable(tmp_path / "locked")
    out = tmp_path / "out"
    code = main(["analyze", str(tmp_path / "locked" / "x.flac"), str(esc50_clip), "--model", str(tiny_hf_dir),
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        line for line in err.splitlines() if "x.flac" in line] and "x.flac" in err
    assert (out / f"{esc50_clip.stem}.tags.csv").exists()


def test_unreadable_subfolder_is_reported_and_the_rest_analysed(tiny_hf_dir, esc50_clip, tmp_path, capsys,
                                                               unreadable):
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "x.flac").write_bytes(esc50_clip.read_bytes())
    (folder / "ok.flac").write_bytes(esc50_clip.read_bytes())
    unreadable(folder / "locked")
    out = tmp_path / "out"
    code = main(["analyze", str(folder), "--model", str(tiny_hf_dir), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    assert str(folder / "locked") in line and "ermission denied" in line
    assert (out / "ok.tags.csv").exists()


# ---- arguments (defect 12) ----------------------------------------------------------------------

@pytest.mark.parametrize("argv, word", [
    (["--hop", "nan"], "--hop"), (["--hop", "inf"], "--hop"), (["--batch-size", "-1"], "--batch-size"),
    (["--batch-size", "0"], "--batch-size"), (["--min-duration", "nan"], "--min-duration"),
    (["--min-duration", "-1"], "--min-duration"), (["--merge-gap", "nan"], "--merge-gap"),
    (["--out", ""], "--out"), (["--threshold", "nan"], "--threshold"), (["--off-threshold", "inf"], "--off-threshold"),
    (["--median", "-1"], "--median"), (["--label-threshold", "Dog=nan"], "--label-threshold"),
])
def test_bad_numbers_are_usage_errors_on_one_line(tiny_hf_dir, esc50_clip, tmp_path, capsys, argv, word):
    with pytest.raises(SystemExit) as info:
        code = main(["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(tmp_path / "o")] + argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.count("\n") == 1 and word in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


# ---- names (defect 14) --------------------------------------------------------------------------

def test_non_utf8_file_name_is_analysed_and_shown_escaped(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    name = os.fsencode(tmp_path) + b"/caf\xe9.flac"
    with open(name, "wb") as f:
        f.write(esc50_clip.read_bytes())
    out = tmp_path / "out"
    assert main(["analyze", os.fsdecode(name), "--model", str(tiny_hf_dir), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "caf\\xe9.flac: " in err
    assert os.path.exists(os.fsencode(out) + b"/caf\xe9.tags.csv")
    params = dict(read_csv(Path(os.fsdecode(os.fsencode(out) + b"/caf\xe9.params.csv")))[1:])
    assert params["file"].endswith("caf\\xe9.flac")          # UTF-8 text, the undecodable byte escaped


def test_failing_file_with_newline_in_its_name_gives_one_line(tiny_hf_dir, tmp_path, capsys):
    bad = tmp_path / "bad\nname.wav"
    bad.write_text("not audio")
    assert main(["analyze", str(bad), "--model", str(tiny_hf_dir), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "name.wav" in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bad\\nname.wav" in lines[0], err


@pytest.mark.parametrize("fmt", ["audacity", "sv"])
def test_combined_refused_for_formats_without_a_file_column(tiny_hf_dir, esc50_clip, tmp_path, capsys, fmt):
    code = main(["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(tmp_path / "o"),
                 "--formats", f"tags,{fmt}", "--combined"])
    err = capsys.readouterr().err
    assert code == 2 and fmt in err and "--combined" in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_one_audio_suffix_list_everywhere():
    from core import audio_io, cli, inputs
    from training import data
    assert cli.AUDIO_SUFFIXES is inputs.AUDIO_SUFFIXES is audio_io.AUDIO_SUFFIXES
    assert set(data.AUDIO_EXTENSIONS) == audio_io.AUDIO_SUFFIXES


def test_export_names_do_not_depend_on_the_order_of_inputs(tmp_path):
    from core.inputs import plan_outputs
    files = [(tmp_path / n, tmp_path) for n in ("x.wav", "x.flac", "y.wav", "Y.mp3", "combined.ogg")]
    forward, _ = plan_outputs(files, tmp_path / "out", combined_dir=tmp_path / "out")
    backward, _ = plan_outputs(files[::-1], tmp_path / "out", combined_dir=tmp_path / "out")
    names = {p.path.name: p.stem for p in forward}
    assert names == {p.path.name: p.stem for p in backward} == {
        "x.wav": "x.wav", "x.flac": "x.flac", "y.wav": "y.wav", "Y.mp3": "Y.mp3", "combined.ogg": "combined.ogg"}
    alone, renamed = plan_outputs([(tmp_path / "x.wav", tmp_path)], None)
    assert alone[0].stem == "x" and alone[0].out_dir == tmp_path and renamed == []
