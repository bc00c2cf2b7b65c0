"""`--formats parquet` (core/tables.py) from local analyze: one part per file, replaced by --force, never doubled."""
from __future__ import annotations

import numpy as np
import pytest

from core.cli import main

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install '.[cluster]')")


def test_parquet_datasets_from_local_analyze(esc50_clip, tiny_hf_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--hop", "0.5", "--quiet",
            "--formats", "scores,parquet"]
    assert main(args) == 2                                       # the datasets need one folder: --out
    assert "needs --out" in capsys.readouterr().err
    assert main([*args, "--out", str(out)]) == 0
    scores = pd.read_parquet(out / "parquet" / "scores")
    csv = np.loadtxt(out / f"{esc50_clip.stem}.scores.csv", delimiter=",", skiprows=1)
    assert len(scores) == csv.shape[0] * (csv.shape[1] - 2)     # long: one row per (window, label)
    wide = scores.pivot(index="window", columns="label_index", values="score").to_numpy()
    assert np.abs(wide - csv[:, 2:]).max() <= 5e-5              # the CSV's 4 decimals
    assert set(scores["file"]) == {str(esc50_clip)} and set(scores["hop_s"]) == {0.5}
    assert str(scores["model"].iloc[0]).startswith("tiny-ast-")  # the Hive partition: model name and hash
    parts = sorted((out / "parquet").rglob("*.parquet"))
    assert len(parts) == 2
    assert main([*args, "--out", str(out)]) == 1                # never a silent overwrite
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--force"]) == 0     # replaced in place, not a second part
    assert sorted((out / "parquet").rglob("*.parquet")) == parts
