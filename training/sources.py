"""The public audio repositories the default model is trained and evaluated on, pinned to commits.

Used by `python -m training corpus` (training/corpus.py) and the out-of-domain evaluation. Each repository is
checked out at its pinned commit under one root folder (`<root>/<owner>+<name>`), from (first that works):
  1. an existing checkout there at that commit (e.g. made by hand: `git clone URL && git checkout COMMIT`);
  2. a local mirror (a bare or normal git repository) under $AST_TAGGER_MIRRORS/<owner>+<name>/repo;
  3. `git clone https://github.com/<owner>/<name>` then `git checkout <commit>`.
`use` says what a source may serve for: "train" (a stated licence that allows it) or "eval" (no stated licence,
or one that forbids training: out-of-domain evaluation only). Sources that ../shared/docs/DATA-SOURCES.md lists as
held out (UrbanSound8K, LibriSpeech, ...) are not listed here and must never be added.
"""
from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repo:
    slug: str          # owner/name on GitHub
    commit: str        # the pinned commit (40 hex digits)
    licence: str       # as stated by the repository (or "none stated")
    use: str           # "train" or "eval"

    @property
    def folder(self) -> str:
        return self.slug.replace("/", "+")

    @property
    def url(self) -> str:
        return f"https://github.com/{self.slug}"


REPOS: dict[str, Repo] = {r.folder: r for r in [
    # --- training: licence stated and allows it
    Repo("abdulkaderghandoura/arabic-speech-commands-dataset", "72f3438212ff6cf8fbe5ae8068361840646429bd",
         "CC BY 4.0", "train"),
    Repo("Picovoice/wake-word-benchmark", "84919190fb1891bf0936dcb577d9268e467f876f", "Apache-2.0", "train"),
    Repo("ZenvilleErasmus/RAVDESS-emotions-speech-audio-only", "29dc10e08b419f805a29c691c4dbc03da0b2b43e",
         "CC BY-NC-SA 4.0", "train"),
    Repo("vinsis/speech-commands-recognition", "53317d51bc2c75de6118ede48b0da06a412a1341", "CC BY 4.0", "train"),
    Repo("JBFH-Dev/Keystroke-Datasets", "2ecdc09b6d1868aae50813f6a6c842bdd52dab06", "MIT", "train"),
    Repo("felixchenfy/Speech-Commands-Classification-by-LSTM-PyTorch", "173ef9c09198572ee42628e5351abc43fa506030",
         "CC BY 4.0 (the Speech Commands background noise files only)", "train"),
    Repo("speechbrain/speechbrain", "9c826ef3937bac885c8a6ca86c6889a30f256fb5", "Apache-2.0", "train"),
    Repo("csteinmetz1/pymixconsole", "49d86aeddfdd0b59c18830b02f63c98f721caf9d", "Creative Commons (OpenAIR)",
         "train"),
    Repo("notthetup/auralizr", "edd00d07dbb72f70f67e662aa993dfabc2f48ac9", "MIT repo; OpenAIR IRs", "train"),
    # --- evaluation only: held out from training (licence not stated, or kept out to measure out of domain)
    Repo("scikit-maad/scikit-maad", "a726add0f86b70a7c59f2a1b4ba5978f7ca8fdf1", "BSD-3-Clause", "eval"),
    Repo("librosa/data", "450cdd8a002c98e7bdbfebb309fc1ed024001f77", "CC0 repo; per-file CC BY / PD", "eval"),
    Repo("YashNita/Animal-Sound-Dataset", "574b5e2d9b071f142b464bb7b43d6a736ebb0dac", "none stated", "eval"),
    Repo("BachchuPaul/Bengali-Isolated-Spoken-Digit", "5c5a23d89e3648e9556486475cd840ab560a6957", "none stated",
         "eval"),
    Repo("jim-schwoebel/sample_voice_data", "86fdf302bf31479d45a3d26954361d54917ae71c", "none stated", "eval"),
    Repo("siddiquelatif/URDU-Dataset", "4b546d4e0fa36d1c86c53a281631b2ab7ce2fdec", "research purposes only",
         "eval"),
    Repo("CaCuCkA/ukranian-spoken-digits", "16e0db48003793295efd196d83eed90e4453af02", "none stated", "eval"),
    Repo("kolesov93/lt_speech_commands", "19ab7098e9211bec6e71b0359165172a66117047", "none stated", "eval"),
    Repo("VISHAL-RAJA-25/Sleep-Stage-Classification", "2be679fb25ff03506e543363781fa79a12a72216", "none stated",
         "eval"),
]}


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def checkout(repo: Repo, root: str | Path) -> Path:
    """The work tree of `repo` at its pinned commit under `root` (made if missing; see the module doc)."""
    dest = Path(root) / repo.folder
    if (dest / ".git").exists():
        if _git("rev-parse", "HEAD", cwd=dest) != repo.commit:
            _git("checkout", "-q", repo.commit, cwd=dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    mirrors = os.environ.get("AST_TAGGER_MIRRORS")
    source = repo.url
    if mirrors:
        for candidate in (Path(mirrors) / repo.folder / "repo", Path(mirrors) / repo.folder):
            if candidate.exists():
                source = str(candidate)
                break
    log.info("cloning %s into %s", source, dest)
    _git("clone", "-q", "--no-checkout", source, str(dest))
    _git("checkout", "-q", repo.commit, cwd=dest)
    return dest
