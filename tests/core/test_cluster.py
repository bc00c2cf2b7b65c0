"""`analyze --cluster ray` (core/cluster.py) on a local Ray with 2 CPUs: the exports of local analyze, a resumable
run, failures that stay per file, a worker that dies mid-run. Real audio: the four ESC-50 clips of tests/data
cut into 40 clips of 1-2 s, plus the four whole clips (several rows per file at a 0.1 s hop)."""
from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.manifest import MANIFEST_NAME

DATA = Path(__file__).resolve().parents[1] / "data"
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install '.[cluster]' or -r requirements-test.txt)")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (2 CPUs: one decode task and one scoring actor at a time)."""
    import ray

    from core.cluster import connect
    started = connect(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """44 real clips: 10 cuts of 1, 1.5 or 2 s from each ESC-50 clip, and the clips themselves."""
    import soundfile as sf
    folder = tmp_path_factory.mktemp("clips")
    for source in sorted(DATA.glob("*.flac")):
        audio, rate = sf.read(source, dtype="float32")
        for j in range(10):
            start = int(j * 0.3 * rate)
            sf.write(folder / f"{source.stem}-{j:02d}.wav", audio[start:start + int((1 + (j % 3) * 0.5) * rate)],
                     rate, subtype="PCM_16")
        shutil.copy(source, folder / source.name)
    return folder


def analyze(*args: str) -> int:
    return main(["analyze", *args, "--quiet"])


def read_scores(path: Path) -> np.ndarray:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return np.array(rows, dtype=np.float64)


def read_tags(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def assert_same_exports(local: Path, cluster: Path, names: list[str]) -> None:
    for stem in names:
        a, b = read_scores(local / f"{stem}.scores.csv"), read_scores(cluster / f"{stem}.scores.csv")
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-4 + 1e-9, stem   # 4-decimal export: 1 unit
        ta, tb = read_tags(local / f"{stem}.tags.csv"), read_tags(cluster / f"{stem}.tags.csv")
        assert len(ta) == len(tb), stem
        for ra, rb in zip(ta[1:], tb[1:]):   # same events; confidences within one exported unit
            assert ra[:4] + ra[5:11] + ra[13:] == rb[:4] + rb[5:11] + rb[13:], stem
            assert abs(float(ra[4]) - float(rb[4])) <= 1e-4 + 1e-9 and abs(float(ra[11]) - float(rb[11])) <= 1e-4 + 1e-9
            # the peak's time: where windows tie within float noise (the tiny random model saturates), either
            # run may name another of the tied windows; the local score there must be the peak
            centres = np.minimum(a[:, 0] + float(ra[9]) / 2, a[:, 1].max())   # peak time: the window's centre
            at = a[np.isclose(centres, float(rb[12]), atol=1e-3), 2 + int(rb[10])]
            assert len(at) >= 1 and np.abs(at - float(ra[4])).min() <= 2e-4, stem
        assert (local / f"{stem}.params.csv").read_text() == (cluster / f"{stem}.params.csv").read_text(), stem


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


@pytest.fixture(scope="module")
def first_run(local_ray, clips, tiny_hf_dir, tmp_path_factory):
    """Local analyze and a cluster run of the 44 clips at a 0.1 s hop (the whole clips span two rows)."""
    out = tmp_path_factory.mktemp("runs")
    common = ["--model", str(tiny_hf_dir), "--hop", "0.1", "--formats", "tags,scores,params,parquet"]
    assert analyze(str(clips), "--out", str(out / "local"), *common) == 0
    assert analyze(str(clips), "--out", str(out / "ray"), "--cluster", "ray", *common) == 0
    return out, common


@needs_ray
def test_cluster_gives_the_scores_and_events_of_local_analyze(first_run, clips):
    out, _ = first_run
    names = sorted(p.stem for p in clips.iterdir())
    assert len(names) == 44
    assert_same_exports(out / "local", out / "ray", names)
    records = manifest(out / "ray")
    assert sorted(Path(r["path"]).stem for r in records) == names and {r["status"] for r in records} == {"done"}
    whole = next(r for r in records if Path(r["path"]).name == "1-100032-A-0.flac")
    assert whole["windows"] == 38 and whole["duration_s"] == 5.0      # 38 windows of 1.28 s at 0.1 s: two rows


@needs_ray
def test_parquet_datasets_hold_every_window_and_event(first_run):
    import pandas as pd
    out, _ = first_run
    scores = pd.read_parquet(out / "ray" / "parquet" / "scores")
    events = pd.read_parquet(out / "ray" / "parquet" / "events")
    local = pd.read_parquet(out / "local" / "parquet" / "scores")
    key = ["file", "window", "label_index"]
    a, b = scores.sort_values(key).reset_index(drop=True), local.sort_values(key).reset_index(drop=True)
    assert len(a) == len(b) and np.abs(a["score"].to_numpy() - b["score"].to_numpy()).max() <= 1e-4
    assert {"file", "model", "model_name", "hop_s", "on_threshold", "code_version"} <= set(events.columns)
    assert scores["file"].nunique() == 44 and set(scores["hop_s"]) == {0.1}
    tags = sum(len(read_tags(p)) - 1 for p in (out / "ray").glob("*.tags.csv"))
    assert len(events) == tags
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(f"select count(*) from read_parquet('{out / 'ray' / 'parquet' / 'events'}/**/*.parquet', "
                   "hive_partitioning=true)").fetchall()[0][0]
    assert n == len(events)


@needs_ray
def test_a_rerun_skips_every_file(first_run, clips, capsys):
    out, common = first_run
    before = {p: p.stat().st_mtime_ns for p in (out / "ray").glob("*.csv")}
    capsys.readouterr()
    assert analyze(str(clips), "--out", str(out / "ray"), "--cluster", "ray", *common) == 0
    assert "done 0, skipped 44, failed 0" in capsys.readouterr().err
    assert before == {p: p.stat().st_mtime_ns for p in (out / "ray").glob("*.csv")}


@needs_ray
def test_force_semantics(first_run, clips, capsys, tmp_path):
    out, common = first_run
    some = tmp_path / "some"
    some.mkdir()
    for name in ("1-100032-A-0-00.wav", "1-44831-A-1-03.wav", "4-150364-B-46-07.wav"):
        shutil.copy(clips / name, some / name)
    target = tmp_path / "out"
    assert analyze(str(some), "--out", str(target), "--model", common[1], "--hop", "0.5") == 0   # local, no manifest
    capsys.readouterr()
    # without --force, files that local analyze wrote are never overwritten: each says so, exit 1 as locally
    assert analyze(str(some), "--out", str(target), "--cluster", "ray", "--model", common[1], "--hop", "0.5") == 1
    err = capsys.readouterr().err
    assert err.count("already exists; pass --force") == 3 and "done 0, skipped 0, failed 3" in err
    # --force analyses them again and overwrites; then the same parameters are skipped, others refused
    assert analyze(str(some), "--out", str(target), "--cluster", "ray", "--model", common[1], "--hop", "0.5",
                   "--force") == 0
    assert "done 3, skipped 0, failed 0" in capsys.readouterr().err
    assert analyze(str(some), "--out", str(target), "--cluster", "ray", "--model", common[1], "--hop", "0.5") == 0
    assert "done 0, skipped 3" in capsys.readouterr().err
    assert analyze(str(some), "--out", str(target), "--cluster", "ray", "--model", common[1], "--hop", "0.25") == 1
    assert capsys.readouterr().err.count("already exists; pass --force") == 3


@needs_ray
def test_a_broken_file_is_reported_and_the_rest_finish(local_ray, clips, tiny_hf_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(clips.glob("*-0[0-4].wav"))[:6]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.wav").write_bytes((clips / "1-100032-A-0-00.wav").read_bytes()[:30])   # a cut header
    out = tmp_path / "out"
    args = [str(folder), "--out", str(out), "--cluster", "ray", "--model", str(tiny_hf_dir)]
    assert analyze(*args) == 1
    err = capsys.readouterr().err
    assert f"error: {folder / 'broken.wav'}:" in err and "done 6, skipped 0, failed 1" in err
    assert len(list(out.glob("*.tags.csv"))) == 6 and not list(out.glob("broken.*"))
    failed = [r for r in manifest(out) if r["status"] == "failed"]
    assert [Path(r["path"]).name for r in failed] == ["broken.wav"] and failed[0]["reason"]
    assert analyze(*args) == 1                                  # the rerun tries only the broken one again
    assert "done 0, skipped 6, failed 1" in capsys.readouterr().err


@needs_ray
def test_a_worker_that_dies_mid_run_costs_nothing(local_ray, clips, tiny_hf_dir, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(clips.glob("*.wav"))[:12]:
        shutil.copy(path, folder / path.name)
    marker = tmp_path / "crash-once"
    marker.touch()
    monkeypatch.setenv("AST_TAGGER_CRASH_ONCE", str(marker))   # the first actor call removes it and os._exit()s
    common = ["--model", str(tiny_hf_dir), "--hop", "0.5"]
    assert analyze(str(folder), "--out", str(tmp_path / "ray"), "--cluster", "ray", *common) == 0
    assert not marker.exists()                                   # an actor did die
    monkeypatch.delenv("AST_TAGGER_CRASH_ONCE")
    assert analyze(str(folder), "--out", str(tmp_path / "local"), *common) == 0
    assert_same_exports(tmp_path / "local", tmp_path / "ray", sorted(p.stem for p in folder.iterdir()))


def test_without_ray_the_error_names_the_install(monkeypatch, capsys, esc50_clip, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)              # import ray -> ImportError
    assert analyze(str(esc50_clip), "--out", str(tmp_path), "--cluster", "ray") == 2
    err = capsys.readouterr().err
    assert "pip install '.[cluster]'" in err and len(err.strip().splitlines()) == 1
    assert analyze(str(esc50_clip), "--out", str(tmp_path), "--cluster", "spark") == 2


@needs_ray
def test_device_means_what_it_means_locally(local_ray, esc50_clip, tiny_hf_dir, tmp_path, capsys):
    if local_ray.cluster_resources().get("GPU"):
        pytest.skip("this Ray has a GPU")
    assert analyze(str(esc50_clip), "--out", str(tmp_path), "--cluster", "ray", "--model", str(tiny_hf_dir),
                   "--device", "cuda") == 2
    assert "has no GPU" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv"))


def test_decode_tasks_group_short_files():
    from core.cluster import decode_blocks
    assert decode_blocks(200, 1000.0, cpus=2) == 9          # 200 clips of 5 s: about 2 min of audio per task
    assert decode_blocks(3, 3 * 3600.0, cpus=2) == 3        # never more tasks than files
    assert decode_blocks(10_000, 10_000 * 3600.0, cpus=64) == 10_000
    assert decode_blocks(40, 60.0, cpus=4) == 16            # at least 4 per CPU, so no CPU waits for a slow task


@needs_ray
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_an_interrupted_run_resumes_to_the_same_exports(first_run, clips, tmp_path, capsys, signame):
    """Ctrl-C (or SIGTERM, which ray.init had turned into a C++ abort with a stack dump) in the middle (a real
    process, its own Ray), then the same command: the files finished are skipped, the rest analysed, and every
    export equals local analyze's; nothing half-written is left."""
    import signal
    import subprocess
    import time
    out, common = first_run
    target = tmp_path / "ray"
    cmd = [sys.executable, str(Path(__file__).resolve().parents[2] / "main.py"), "analyze", str(clips), "--out",
           str(target), "--cluster", "ray", "--quiet", *common]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    manifest_path = target / MANIFEST_NAME
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if manifest_path.exists() and len(manifest_path.read_text().splitlines()) >= 3:
            proc.send_signal(getattr(signal, signame))
            break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=240)
    finished = len(manifest(target))
    if proc.returncode == 0:
        pytest.skip(f"the run finished before it could be interrupted ({finished} files)")
    assert proc.returncode == 130 and "interrupted" in err and "logging.cc" not in err, err[-2000:]
    assert 3 <= finished < 44
    assert not [p for p in target.iterdir() if p.name.startswith(".")]      # no temp or lock file left
    capsys.readouterr()
    assert analyze(str(clips), "--out", str(target), "--cluster", "ray", *common) == 0
    assert f"done {44 - finished}, skipped {finished}, failed 0" in capsys.readouterr().err
    assert_same_exports(out / "local", target, sorted(p.stem for p in clips.iterdir()))
