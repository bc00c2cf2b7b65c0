"""`python main.py analyze` as a user runs it: exports, exit codes, bad input, no partial outputs."""
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.cli import main
from core.export import FORMATS

ROOT = Path(__file__).resolve().parents[2]


def outputs(folder: Path, stem: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(stem + "."))


def make_bad_inputs(folder: Path, clip: Path) -> dict[str, Path]:
    """The bad inputs of the issue, each a real file on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {}
    (bad_empty := folder / "empty.wav").write_bytes(b"")
    bad["empty"] = bad_empty
    (text := folder / "notes.wav").write_text("this is a text file, not audio\n")
    bad["text"] = text
    data = clip.read_bytes()
    (cut := folder / "cut.flac").write_bytes(data[: len(data) // 2])
    bad["truncated"] = cut
    sf.write(folder / "header_only.wav", np.zeros(0, np.float32), 16000)
    bad["header_only"] = folder / "header_only.wav"
    return bad


def test_analyze_real_clip_writes_every_format(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    code = main(["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(tmp_path),
                 "--formats", ",".join(FORMATS), "--hop", "0.5", "--threshold", "0.3"])
    assert code == 0
    written = outputs(tmp_path, esc50_clip.stem)
    assert [p.name[len(esc50_clip.stem):] for p in written] == sorted(FORMATS.values())
    with open(tmp_path / f"{esc50_clip.stem}.scores.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Start (s)", "End (s)", "Speech", "Dog", "Baby cry, infant cry", "Music"]
    assert [r[:2] for r in rows[1:3]] == [["0.000", "1.280"], ["0.500", "1.780"]]
    assert rows[-1][:2] == ["4.000", "5.000"] and len(rows) == 10
    assert all(len(v.split(".")[1]) >= 4 for v in rows[1][2:])
    with open(tmp_path / f"{esc50_clip.stem}.tags.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:6] == ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File"]
    assert "error" not in capsys.readouterr().err


def test_existing_outputs_need_force(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    args = ["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    tags = tmp_path / f"{esc50_clip.stem}.tags.csv"
    tags.write_text("user edits\n")
    assert main(args) == 1
    assert "already exists; pass --force" in capsys.readouterr().err
    assert tags.read_text() == "user edits\n"
    assert main(args + ["--force"]) == 0
    assert tags.read_text().startswith("Start (s),End (s)")


def test_folder_with_bad_files_analyses_the_rest(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    folder = tmp_path / "in"
    bad = make_bad_inputs(folder / "sub", esc50_clip)
    (folder / "good.flac").write_bytes(esc50_clip.read_bytes())
    sf.write(folder / "sub" / "tiny.wav", np.full(100, 0.1, np.float32), 16000)  # < one fbank frame
    code = main(["analyze", str(folder), "--model", str(tiny_hf_dir), "--out", str(tmp_path / "out"),
                 "--formats", "tags,raven,scores", "--combined"])
    err = capsys.readouterr().err
    assert code == 1
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == len(bad), err
    for name, path in bad.items():
        assert any(str(path) in line for line in error_lines), (name, err)
        exported = name == "truncated"  # analysed as far as it decodes, then failed (docs/policies.md)
        assert (tmp_path / "out" / "sub" / f"{path.stem}.tags.csv").exists() == exported
    assert "Traceback" not in err
    assert (tmp_path / "out" / "good.tags.csv").exists()
    assert (tmp_path / "out" / "sub" / "tiny.scores.csv").exists()  # a correct, padded single window
    with open(tmp_path / "out" / "combined.scores.csv", newline="") as f:
        files = {row[0] for row in list(csv.reader(f))[1:]}
    assert files == {str(folder / "good.flac"), str(folder / "sub" / "tiny.wav"), str(bad["truncated"])}
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_an_unexpected_error_in_one_file_does_not_stop_the_others(tiny_hf_dir, esc50_clip, tmp_path, capsys,
                                                                   monkeypatch):
    """A bug that raises something other than TaggerError / OSError for one file: that file fails with
    one line, the files before and after it are still analysed and exported, exit code 1."""
    from core.analyze import Analyzer
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.flac", "b.flac", "c.flac"):
        (folder / name).write_bytes(esc50_clip.read_bytes())
    analyze = Analyzer.analyze

    def failing_on_b(self, path, *args, **kwargs):
        if path.endswith("b.flac"):
            raise RuntimeError("an internal error\nthat spans lines")
        return analyze(self, path, *args, **kwargs)

    monkeypatch.setattr(Analyzer, "analyze", failing_on_b)
    code = main(["analyze", str(folder), "--model", str(tiny_hf_dir), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(folder / "b.flac") in errors[0] and "RuntimeError" in errors[0], err
    assert "that spans lines" in errors[0] and "Traceback" not in err
    assert (tmp_path / "out" / "a.tags.csv").exists() and (tmp_path / "out" / "c.tags.csv").exists()
    assert not list((tmp_path / "out").glob("b.*"))


def test_keyboard_interrupt_still_stops_the_batch(tiny_hf_dir, esc50_clip, tmp_path, capsys, monkeypatch):
    from core.analyze import Analyzer

    def interrupted(self, path, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Analyzer, "analyze", interrupted)
    code = main(["analyze", str(esc50_clip), str(esc50_clip), "--model", str(tiny_hf_dir),
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 130 and "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--formats", "tags,xls"], "unknown format"),
    (["--hop", "0.123"], "hop must be"),
    (["--label-threshold", "Nothing=0.3"], "not a label of this model"),
    (["--threshold", "0.2", "--off-threshold", "0.5"], "thresholds must satisfy"),
])
def test_usage_errors_exit_2(tiny_hf_dir, esc50_clip, tmp_path, capsys, argv, message):
    assert main(["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(tmp_path)] + argv) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bad_model_exits_2(esc50_clip, tmp_path, capsys, monkeypatch):
    (tmp_path / "m.safetensors").write_text("garbage")
    assert main(["analyze", str(esc50_clip), "--model", str(tmp_path / "m.safetensors")]) == 2
    assert "not a readable model file" in capsys.readouterr().err
    monkeypatch.setattr("core.modelfile.MODELS_DIR", tmp_path / "no-models")  # a checkout without assets/models
    assert main(["analyze", str(esc50_clip)]) == 2
    assert "no default model is shipped" in capsys.readouterr().err


def test_shipped_default_model_is_used_without_model(tmp_path, capsys):
    """A newcomer's first run: no --model, a real clip of a class the default model knows."""
    clip = Path(__file__).parents[1] / "data" / "1-100032-A-0.flac"
    assert main(["analyze", str(clip), "--out", str(tmp_path), "--quiet"]) == 0
    assert "model default (51 labels" in capsys.readouterr().err
    with open(tmp_path / f"{clip.stem}.scores.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:2] == ["Start (s)", "End (s)"] and {"Dog", "Speech"} <= set(header)


def test_entry_point_runs_as_a_subprocess(tiny_hf_dir, esc50_clip, tmp_path):
    """The real command line: exit code, one error line per failed file, no traceback without --debug."""
    (tmp_path / "bad.wav").write_text("not audio")
    cmd = [sys.executable, "main.py", "analyze", str(esc50_clip), str(tmp_path / "bad.wav"),
           "--model", str(tiny_hf_dir), "--out", str(tmp_path / "out")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert f"error: {tmp_path / 'bad.wav'}:" in run.stderr and "Traceback" not in run.stderr
    assert (tmp_path / "out" / f"{esc50_clip.stem}.tags.csv").exists()
    debug = subprocess.run(cmd + ["--force", "--debug"], cwd=ROOT, capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_no_command_or_a_file_opens_the_app_through_the_injected_entry(esc50_clip, capsys):
    opened = []

    def open_app(args) -> int:
        opened.append(args)
        return 0

    assert main([], open_app=open_app) == 0
    assert opened[-1].command == "app" and opened[-1].files == [] and opened[-1].model is None
    assert main([str(esc50_clip)], open_app=open_app) == 0            # `python main.py recording.flac`
    assert opened[-1].files == [str(esc50_clip)]
    assert main(["app", "--model", "x.safetensors", "--device", "cpu"], open_app=open_app) == 0
    assert (opened[-1].model, opened[-1].device) == ("x.safetensors", "cpu")
    with pytest.raises(SystemExit) as typo:                           # a typo is a usage error, not the app
        main(["analyse", "x.wav"], open_app=open_app)
    assert typo.value.code == 2
    assert len(opened) == 3
    assert main([]) == 2 and "no desktop window" in capsys.readouterr().err   # core alone never imports Qt
