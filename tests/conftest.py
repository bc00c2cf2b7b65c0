"""Shared fixtures: real clips, tiny models in every format users bring."""
from __future__ import annotations

import builtins
import os
import subprocess
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest
import torch

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
VMIC = Path(__file__).resolve().parents[2] / "shared" / "tools" / "virtual-mic.sh"


@pytest.fixture(scope="session", autouse=True)
def backend_cache(tmp_path_factory) -> Path:
    """Converted models and bf16 verdicts go to a folder of this test session, not the user's cache."""
    path = tmp_path_factory.mktemp("backend-cache")
    os.environ["AST_TAGGER_CACHE"] = str(path)
    return path


@pytest.fixture
def no_portaudio(monkeypatch):
    """A machine without the PortAudio library: importing sounddevice raises its OSError."""
    real_import = builtins.__import__

    def refuse(name, *args, **kw):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", refuse)


@pytest.fixture(scope="session")
def esc50_clip() -> Path:
    """A real 5 s ESC-50 clip (dog bark, CC0) committed under tests/data."""
    return DATA / "1-100032-A-0.flac"


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory) -> Path:
    """A Hugging Face AST directory (random weights, 128-frame window, 4 labels) saved by transformers."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ASTConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=512, max_length=128, num_labels=4,
                                 id2label={0: "Speech", 1: "Dog", 2: "Baby cry, infant cry", 3: "Music"},
                                 label2id={"Speech": 0, "Dog": 1, "Baby cry, infant cry": 2, "Music": 3})
    model = transformers.ASTForAudioClassification(cfg).eval()
    for p in model.parameters():  # larger than the init so that every weight matters
        torch.nn.init.normal_(p, std=0.1)
    path = tmp_path_factory.mktemp("hf") / "tiny-ast"
    model.save_pretrained(path)
    return path


def vmic(command: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(VMIC), command, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def virtual_mic():
    """The shared virtual microphone (a private PulseAudio), started here; stopped at the end only if it was
    not running before (other test runs on this machine may be using it)."""
    if not VMIC.exists():
        pytest.skip(f"no virtual microphone script at {VMIC}")
    if os.geteuid() != 0:
        pytest.skip("the virtual microphone needs root (it installs PulseAudio and writes /etc/pulse)")
    try:
        was_running = "vmic" in vmic("status").stdout.split()
        started = vmic("start")
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"the virtual microphone could not start: {e}")
    if started.returncode != 0:
        pytest.skip(f"the virtual microphone could not start: {(started.stderr or started.stdout)[-400:]}")
    import core.capture as capture
    from core.capture import CaptureError
    try:
        capture.refresh_devices()           # PortAudio may have been initialised before the server existed
        capture.find_input_device()
    except CaptureError as e:
        if not was_running:
            vmic("stop")
        pytest.skip(f"PortAudio sees no input through the virtual microphone: {e}")
    yield VMIC
    if not was_running:
        vmic("stop")
        capture.refresh_devices()
