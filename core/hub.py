"""Released AST checkpoints from the Hugging Face Hub: fetched once into the Hub's usual cache, with progress.

`download(repo_id)` returns the cache folder of a Hub AST model (config.json, preprocessor_config.json when
the repository has one, model.safetensors), which core.modelfile loads like any Hugging Face directory.
A model already in the cache is used without any network request; otherwise the files are fetched with
huggingface_hub (cache layout, locking, HF_ENDPOINT, HF_HOME and tokens as every Hub tool has them).

Threads: the caller's (a GUI worker, app.workers.HubDownloader, or the command line); `progress` and the
`cancel` check run on it, between chunks of the download.

Downloads go over plain HTTPS (huggingface_hub's `http_get`), not hf_xet: there, progress reaches us chunk
by chunk and a cancel raised from the progress hook stops the transfer, while hf_xet reports progress from
its own threads and ignores exceptions raised in the hook. The Hub serves every file over HTTPS as well.
"""
from __future__ import annotations

import re
import socket
import threading
from pathlib import Path
from typing import Callable

from core.errors import ModelFileError, TaggerError

__all__ = ["AUDIOSET_REPO", "AUDIOSET_MB", "MODEL_FILES", "DownloadCancelled", "Progress", "is_hub_id", "cached",
           "download", "download_audioset"]

AUDIOSET_REPO = "MIT/ast-finetuned-audioset-10-10-0.4593"   # AST.md: the released AudioSet checkpoint
AUDIOSET_MB = 346                                            # its model.safetensors
MODEL_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")   # small files first
OPTIONAL = {"preprocessor_config.json"}                      # without it the AudioSet statistics are used
KNOWN_MB = {AUDIOSET_REPO: AUDIOSET_MB}

Progress = Callable[[int, int], None]     # (bytes done, bytes in all), on the downloading thread


class DownloadCancelled(TaggerError):
    """The download was cancelled: the files finished before stay in the cache, the one in flight is not kept."""


def _hub():
    """huggingface_hub, set to download over HTTPS (see the module docstring)."""
    try:
        import huggingface_hub
        from huggingface_hub import constants, errors  # noqa: F401 - `errors` makes huggingface_hub.errors
    except ImportError as e:
        raise ModelFileError("Hub models need huggingface_hub (pip install huggingface_hub)") from e
    constants.HF_HUB_DISABLE_XET = True
    return huggingface_hub


def is_hub_id(spec: str) -> bool:
    """Whether `spec` is spelled like a Hub repository id (owner/name); callers look for a local path first."""
    return re.fullmatch(r"[\w.-]+/[\w.-]+", spec) is not None and not spec.startswith(".")


def cached(repo_id: str) -> Path | None:
    """The cache folder holding every file of `repo_id`'s model, or None; never touches the network."""
    hub = _hub()
    folder = None
    for name in MODEL_FILES:
        found = hub.try_to_load_from_cache(repo_id, name)
        if isinstance(found, str):
            folder = Path(found).parent
        elif not (name in OPTIONAL and found is not None):    # found is _CACHED_NO_EXIST: not on the Hub
            return None
    return folder


def _byte_counter(on_bytes: Callable[[int], None]) -> type:
    """A tqdm_class for hf_hub_download that only passes the byte counts on (http_get creates one per file
    and uses it as a context manager with update(n))."""

    class ByteCounter:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self) -> "ByteCounter":
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: int = 1) -> None:
            on_bytes(n)

        def close(self) -> None:
            pass

    return ByteCounter


def _sizes(hub, repo_id: str) -> dict[str, int]:
    """{file: bytes} of the model files the repository has and the cache lacks (one HEAD request each): what
    the download fetches, so that its progress ends at its total also when an interrupted one left some."""
    sizes = {}
    for name in MODEL_FILES:
        if isinstance(hub.try_to_load_from_cache(repo_id, name), str):
            continue                      # hf_hub_download finds it and fetches nothing
        try:
            sizes[name] = hub.get_hf_file_metadata(hub.hf_hub_url(repo_id, name)).size or 0
        except hub.errors.EntryNotFoundError:
            if name not in OPTIONAL:
                raise
    return sizes


def download(repo_id: str, progress: Progress | None = None, cancel: threading.Event | None = None) -> Path:
    """The cache folder of `repo_id`'s AST model, downloaded first if it is not cached (then no request at all).

    progress(done, total) gets the bytes of the files to fetch together (those not in the cache yet); setting
    `cancel` stops the download within one chunk with DownloadCancelled. Any other failure is a ModelFileError
    that says what to do.
    """
    folder = cached(repo_id)
    if folder is not None:
        return folder
    hub = _hub()
    try:
        total = sum(_sizes(hub, repo_id).values())
        done = 0

        def on_bytes(n: int) -> None:
            nonlocal done
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(f"the download of {repo_id} was cancelled")
            done += n
            if progress is not None:
                progress(done, total)

        if progress is not None:
            progress(0, total)
        for name in MODEL_FILES:
            try:
                folder = Path(hub.hf_hub_download(repo_id, name, tqdm_class=_byte_counter(on_bytes))).parent
            except hub.errors.EntryNotFoundError:   # the cache notes the absence: no request next time
                if name not in OPTIONAL:
                    raise
        return folder
    except DownloadCancelled:
        raise
    except Exception as e:  # noqa: BLE001 - network, HTTP and disk errors become one sentence
        raise _in_words(hub, repo_id, e) from e


def download_audioset(progress: Progress | None = None, cancel: threading.Event | None = None) -> Path:
    """The released AudioSet AST (527 labels), from the cache or downloaded once: see download()."""
    return download(AUDIOSET_REPO, progress, cancel)


def _in_words(hub, repo_id: str, e: Exception) -> ModelFileError:
    """A failed download as a ModelFileError that says why and what to do instead."""
    errors = hub.errors
    host = hub.constants.ENDPOINT.split("://")[-1].rstrip("/")
    size = f"the model is {KNOWN_MB[repo_id]} MB; " if repo_id in KNOWN_MB else ""
    elsewhere = (f"on a machine with internet run `hf download {repo_id} {' '.join(MODEL_FILES)} --local-dir "
                 f"{repo_id.split('/')[-1]}`, copy that folder here and pass it (--model FOLDER, or the model "
                 "picker's 'Open Hugging Face directory…')")
    chain = _chain(e)
    offline = (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled, ConnectionError, TimeoutError,
               socket.gaierror)
    if any(isinstance(link, offline) for link in chain):
        cause = chain[-1]                 # the socket's own words: refused, name not known, timed out
        return ModelFileError(f"no internet connection to {host}: {cause}; {size}{elsewhere}")
    if isinstance(e, errors.RepositoryNotFoundError):
        return ModelFileError(f"{host} has no model '{repo_id}' that this machine may read (a typo, a private "
                              f"or gated repository: log in with `hf auth login`); {e.__class__.__name__}")
    if isinstance(e, errors.EntryNotFoundError):
        return ModelFileError(f"'{repo_id}' on {host} lacks config.json or model.safetensors, so it is not an AST "
                              "model this program loads")
    if isinstance(e, errors.HfHubHTTPError):
        return ModelFileError(f"{host} refused the download of '{repo_id}' ({e}); try again later, or {elsewhere}")
    if isinstance(e, OSError):
        return ModelFileError(f"could not write '{repo_id}' into the Hugging Face cache "
                              f"{hub.constants.HF_HUB_CACHE} ({e}); {size}free some space or set HF_HOME to "
                              "another disk")
    return ModelFileError(f"downloading '{repo_id}' from {host} failed: {type(e).__name__}: {e}")


def _chain(e: BaseException) -> list[BaseException]:
    """e and the exceptions it was raised from, outermost first (httpx wraps the socket's error twice)."""
    chain = [e]
    while (e := e.__cause__ or e.__context__) is not None and e not in chain:
        chain.append(e)
    return chain
