"""core.hub against a local server in the Hub's layout (huggingface.co is not reachable from the tests).

The server serves a tiny real AST checkpoint (transformers' save_pretrained + a preprocessor_config.json) at
/<repo>/resolve/<revision>/<file>, with the headers huggingface_hub reads (X-Repo-Commit, ETag,
Content-Length). The downloads run in child processes with HF_ENDPOINT and HF_HOME set, as a user sets them.
"""
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from core.hub import AUDIOSET_REPO
from core.modelfile import load_model

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubHandler(BaseHTTPRequestHandler):
    """GET/HEAD /<owner>/<name>/resolve/<revision>/<file> from server.folder (one repository)."""

    def _serve(self, body: bool) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        prefix = f"/{AUDIOSET_REPO}/resolve/main/"
        name = self.path[len(prefix):] if self.path.startswith(prefix) else ""
        path = self.server.folder / name
        if not name or "/" in name or not path.is_file():
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound" if name else "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:                           # in 64 kB pieces, server.delay_s apart (a slow line)
            for i in range(0, len(data), 1 << 16):
                self.wfile.write(data[i:i + (1 << 16)])
                self.wfile.flush()
                time.sleep(self.server.delay_s)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory) -> Path:
    """A tiny AST in the layout of MIT/ast-finetuned-audioset-10-10-0.4593: config, preprocessor, safetensors."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(1)
    cfg = transformers.ASTConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                                 max_length=128, num_labels=3, id2label={0: "Speech", 1: "Dog", 2: "Music"},
                                 label2id={"Speech": 0, "Dog": 1, "Music": 2})
    folder = tmp_path_factory.mktemp("hub") / "ast"
    transformers.ASTForAudioClassification(cfg).eval().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "ASTFeatureExtractor", "mean": -4.2677393, "std": 4.5689974,
         "num_mel_bins": 128, "max_length": 128, "sampling_rate": 16000}))
    return folder


@pytest.fixture
def hub(hub_folder):
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    server.folder, server.requests, server.delay_s = hub_folder, [], 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_hub(hub, tmp_path, monkeypatch):
    """huggingface_hub in this process pointed at the local Hub with an empty cache (tmp_path / "hub-cache"):
    what HF_ENDPOINT and HF_HUB_CACHE set when a process starts (this one imported huggingface_hub long before)."""
    from huggingface_hub import constants
    url = endpoint(hub)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return hub


CHILD = """
import json, sys, threading
from core.hub import download_audioset, DownloadCancelled
from core.errors import ModelFileError
seen, cancel = [], threading.Event()
def progress(done, total):
    seen.append([done, total])
    if sys.argv[1] == "cancel" and done > 0:
        cancel.set()
try:
    folder = download_audioset(progress, cancel)
    print(json.dumps({"folder": str(folder), "progress": seen}))
except (DownloadCancelled, ModelFileError) as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e), "progress": seen}))
"""


def fetch(endpoint: str, hf_home: Path, mode: str = "download") -> dict:
    """download_audioset() in a fresh process with HF_ENDPOINT and HF_HOME set; its result as a dict."""
    env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(hf_home), "PATH": "/usr/bin:/bin", "HF_HUB_DISABLE_TELEMETRY": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def endpoint(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_downloads_once_with_progress_and_loads_unchanged(hub, hub_folder, tmp_path):
    first = fetch(endpoint(hub), tmp_path / "hf")
    total = sum((hub_folder / f).stat().st_size for f in ("config.json", "preprocessor_config.json",
                                                          "model.safetensors"))
    done = [d for d, _ in first["progress"]]
    assert first["progress"][0] == [0, total] and first["progress"][-1] == [total, total]
    assert done == sorted(done) and {t for _, t in first["progress"]} == {total}
    folder = Path(first["folder"])
    assert folder.is_relative_to(tmp_path / "hf" / "hub" / "models--MIT--ast-finetuned-audioset-10-10-0.4593")
    assert sum(r.startswith("GET") for r in hub.requests) == 3
    loaded = load_model(folder)
    reference = load_model(hub_folder)
    assert [label.name for label in loaded.labels] == ["Speech", "Dog", "Music"]
    assert (loaded.features.mean, loaded.features.std) == (reference.features.mean, reference.features.std)
    x = torch.randn(1, 128, 128)
    assert torch.equal(loaded.model(x), reference.model(x))
    hub.requests.clear()
    second = fetch(endpoint(hub), tmp_path / "hf")
    assert second == {"folder": str(folder), "progress": []} and hub.requests == []   # no request at all


def test_a_hub_id_loads_from_the_cache_without_the_network(hub, tmp_path):
    fetch(endpoint(hub), tmp_path / "hf")
    hub.server_close()                                  # from now on nothing answers on that port
    env = {"HF_ENDPOINT": endpoint(hub), "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    code = (f"from core.modelfile import load_model; m = load_model({AUDIOSET_REPO!r}); "
            "print(m.name, len(m.labels))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [AUDIOSET_REPO, "3"]


def test_cancel_stops_the_download_and_the_next_one_completes(hub, tmp_path):
    cancelled = fetch(endpoint(hub), tmp_path / "hf", mode="cancel")
    assert cancelled["error"] == "DownloadCancelled" and "cancelled" in cancelled["message"]
    assert not list((tmp_path / "hf").rglob("model.safetensors"))      # nothing half-written is left
    again = fetch(endpoint(hub), tmp_path / "hf")
    assert Path(again["folder"], "model.safetensors").is_file()


def test_offline_is_said_in_words(tmp_path):
    with socket.socket() as s:                          # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = fetch(f"http://127.0.0.1:{port}", tmp_path / "hf")
    assert result["error"] == "ModelFileError"
    message = result["message"]
    assert message.startswith(f"no internet connection to 127.0.0.1:{port}: ")
    assert "the model is 346 MB" in message and "on a machine with internet run `hf download " in message
    assert "pass it (--model FOLDER" in message and "\n" not in message
