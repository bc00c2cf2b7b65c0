"""`--model <Hub id>` on the command line: a byte bar on stderr while the model downloads (none from the cache),
and Ctrl-C during the download ends as any interrupted command does, leaving nothing half-written in the cache.
Against the local Hub of tests/core/test_hub.py."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tqdm import tqdm

from core.cli import main
from core.hub import AUDIOSET_REPO, MODEL_FILES
from tests.core.test_hub import ROOT, endpoint, hub, hub_folder, local_hub  # noqa: F401 - the local Hub's fixtures


def bar_lines(stderr: str) -> list[str]:
    """Every state of the download bar tqdm drew (it redraws in place after a carriage return)."""
    return [line for line in re.split(r"[\r\n]", stderr) if line.startswith(f"{AUDIOSET_REPO}: ")]


def files_fetched(server) -> int:
    """GETs of the model's files (huggingface_hub may also ask its endpoint for other things of its own)."""
    return sum(r.startswith(f"GET /{AUDIOSET_REPO}/resolve/") for r in server.requests)


def model_bytes(folder: Path) -> int:
    return sum((folder / name).stat().st_size for name in MODEL_FILES)


@pytest.mark.parametrize("command", ["analyze", "clips"])
def test_a_hub_download_shows_a_byte_bar_once(command, local_hub, hub_folder, esc50_clip, tmp_path, capsys):
    argv = [command, str(esc50_clip), "--model", AUDIOSET_REPO, "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    drawn = bar_lines(capsys.readouterr().err)
    size = tqdm.format_sizeof(model_bytes(hub_folder))
    assert drawn and "100%" in drawn[-1] and f" {size}/{size} " in drawn[-1], drawn
    assert files_fetched(local_hub) == len(MODEL_FILES)
    local_hub.requests.clear()
    assert main([*argv, "--force"]) == 0                 # cached: no request, so no bar
    assert bar_lines(capsys.readouterr().err) == [] and local_hub.requests == []


def test_listen_shows_the_bar_before_it_listens(virtual_mic, local_hub, hub_folder, tmp_path, capsys):
    assert main(["listen", "--model", AUDIOSET_REPO, "--duration", "2", "--out", str(tmp_path), "--name", "hub"]) == 0
    err = capsys.readouterr().err
    size = tqdm.format_sizeof(model_bytes(hub_folder))
    assert f" {size}/{size} " in bar_lines(err)[-1] and err.index(bar_lines(err)[-1]) < err.index("listening on")


def test_quiet_downloads_without_a_bar(local_hub, esc50_clip, tmp_path, capsys):
    assert main(["analyze", str(esc50_clip), "--model", AUDIOSET_REPO, "--out", str(tmp_path), "--quiet"]) == 0
    assert bar_lines(capsys.readouterr().err) == []
    assert files_fetched(local_hub) == len(MODEL_FILES)


def test_ctrl_c_during_the_download_is_one_line_and_the_next_run_fetches_the_rest(local_hub, hub_folder, esc50_clip,
                                                                                 tmp_path, capsys):
    """A real SIGINT to `python main.py analyze` while model.safetensors arrives (in 64 kB pieces, 0.3 s apart);
    then the same command in this process, on the same cache."""
    local_hub.delay_s = 0.3
    cache = tmp_path / "hub-cache"                           # local_hub's cache, shared with the child
    env = {**os.environ, "HF_ENDPOINT": endpoint(local_hub), "HF_HUB_CACHE": str(cache),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    argv = ["analyze", str(esc50_clip), "--model", AUDIOSET_REPO, "--out", str(tmp_path / "out")]
    child = subprocess.Popen([sys.executable, "main.py", *argv], cwd=ROOT, env=env, stderr=subprocess.PIPE,
                             text=True)
    weights = f"GET /{AUDIOSET_REPO}/resolve/main/model.safetensors"
    deadline = time.monotonic() + 120
    while weights not in local_hub.requests and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)                                          # into the transfer
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "interrupted" and "Traceback" not in stderr
    assert bar_lines(stderr) and "100%" not in bar_lines(stderr)[-1]   # stopped part-way, ended by its own line
    assert not list(cache.rglob("*.incomplete")) and not list(cache.rglob("model.safetensors"))
    assert not (tmp_path / "out").exists()                  # nothing analysed, nothing exported

    local_hub.delay_s = 0.0
    local_hub.requests.clear()
    assert main(argv) == 0
    final = bar_lines(capsys.readouterr().err)[-1]          # the small files are cached: the weights alone
    size = tqdm.format_sizeof((hub_folder / "model.safetensors").stat().st_size)
    assert final.startswith(f"{AUDIOSET_REPO}: 100%|") and f" {size}/{size} " in final, final
    assert files_fetched(local_hub) == 1
