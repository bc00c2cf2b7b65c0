"""Out-of-domain evaluation: clips from the evaluation-only repositories of training/sources.py, scored as the app
sees them (Analyzer at the app's 1 s hop + the default event rule), next to any peer that gives a Timeline.

Runs on the main thread of `python -m training ood` (and of `report --ood-root`). Three parts:
  * labelled clips (`build_manifest`): per source, files of one of our labels, decodable, not an ESC-50 excerpt
    (training/esc50_check.py) and not an exact duplicate, then a seeded sample of at most `cap` clips;
  * unlabelled ambience and music: false tags per 10 minutes, where a label in the source's allowed set
    (e.g. birds in a forest soundscape) is not false;
  * shortcut files (`shortcut_signals`): digital silence, quiet white/pink noise, a handling thump, of 0.05-5 s,
    and padded last windows: every tag on them is false.
Metrics per clip: "top-1" = the clip's label is the argmax, over the labels present in the labelled set (closed
set), of the clip's max-over-windows score; "tagged" = an event of the clip's label under EventConfig().
"""
from __future__ import annotations

import dataclasses
import logging
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.audio_io import AUDIO_SUFFIXES, read_audio
from core.errors import AudioError
from training.data import synth_audio
from training.sources import REPOS, Repo, checkout

log = logging.getLogger(__name__)

NATURE = ("chirping_birds", "crow", "insects", "crickets", "frog", "wind", "rain")  # not false in a soundscape


@dataclass(frozen=True)
class SourceSpec:
    name: str                         # short name in the tables, e.g. "yashnita-cat", "speech-urdu"
    repo: str                         # folder of the repo in training.sources.REPOS (owner+name)
    patterns: tuple[str, ...]         # globs relative to the repo root
    label: str                        # our category ("speech", "cat", ...) or "" for unlabelled audio
    allowed: tuple[str, ...] = ()     # unlabelled sources: labels that are not false tags here
    exclude: tuple[str, ...] = ()     # file-name prefixes to leave out
    language: str = ""                # speech sources


_YASH = "YashNita+Animal-Sound-Dataset"
_LIBROSA_HELD_OUT = ("198-209-0000", "3436-172162-0000", "5703-47212-0000")  # LibriSpeech: never used here

SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("yashnita-cat", _YASH, ("Kedi*/*",), "cat"),
    SourceSpec("yashnita-dog", _YASH, ("Kopek*/*",), "dog"),
    SourceSpec("yashnita-bird", _YASH, ("Kus*/*",), "chirping_birds"),
    SourceSpec("yashnita-cow", _YASH, ("Inek/*",), "cow"),
    SourceSpec("yashnita-sheep", _YASH, ("Koyun/*",), "sheep"),
    SourceSpec("yashnita-frog", _YASH, ("Kurbaga/*",), "frog"),
    SourceSpec("yashnita-hen", _YASH, ("Tavuk/*",), "hen"),
    SourceSpec("snoring", "VISHAL-RAJA-25+Sleep-Stage-Classification", ("Snoring Dataset/1/*.wav",), "snoring"),
    SourceSpec("speech-bengali", "BachchuPaul+Bengali-Isolated-Spoken-Digit", ("*/*.wav",), "speech",
               language="Bengali (digits)"),
    SourceSpec("speech-voxceleb", "jim-schwoebel+sample_voice_data", ("males/*.wav", "females/*.wav"), "speech",
               language="English, interviews (VoxCeleb)"),
    SourceSpec("speech-urdu", "siddiquelatif+URDU-Dataset", ("Angry/*.wav", "Happy/*.wav", "Neutral/*.wav",
                                                              "Sad/*.wav"), "speech", language="Urdu (talk shows)"),
    SourceSpec("speech-ukrainian", "CaCuCkA+ukranian-spoken-digits", ("recordings/*/*.mp3",), "speech",
               language="Ukrainian (digits, MP3)"),
    SourceSpec("speech-lithuanian", "kolesov93+lt_speech_commands", ("raw/*.wav",), "speech",
               language="Lithuanian (raw command sessions)"),
    SourceSpec("ambience-maad", "scikit-maad+scikit-maad", ("data/indices/S4A03895_*.wav", "data/spinetail.wav"),
               "", allowed=NATURE),
    SourceSpec("music-librosa", "librosa+data", ("audio/*.ogg",), "", exclude=_LIBROSA_HELD_OUT),
    SourceSpec("roomtone-lithuanian", "kolesov93+lt_speech_commands", ("dataset/_background_noise_/*.wav",), ""),
)
# Per-file allowances inside music-librosa: the robin is a bird, the pibble is a dog howling in her sleep.
FILE_ALLOWED = {"456440__inspectorj__bird-whistling-robin-single-13": ("chirping_birds",), "pibble": ("dog",)}


@dataclass(frozen=True)
class EvalClip:
    source: str
    label: str                  # our category, "" = unlabelled (ambience, music, room tone, shortcut)
    path: str                   # absolute path of the audio file
    rel_path: str               # path inside its repository (provenance)
    commit: str                 # the repository's pinned commit
    duration_s: float
    allowed: tuple[str, ...] = ()
    language: str = ""
    hop_s: float | None = None  # shortcut files: the hop to analyse at (None = the app's default)


class ExcerptIndex:
    """What build_manifest needs from training.esc50_check.Esc50Index (a stub in tests)."""

    def match(self, wave_16k: np.ndarray) -> tuple[str, float] | None: ...


def _files(root: Path, spec: SourceSpec) -> list[Path]:
    found = {p for pat in spec.patterns for p in root.glob(pat) if p.is_file()
             and p.suffix.lower() in AUDIO_SUFFIXES and ".hq." not in p.name  # librosa's .hq.ogg: same audio
             and not p.name.startswith(spec.exclude or ("\0",))}
    return sorted(found)


def build_manifest(root: str | Path, index: ExcerptIndex | None = None, cap: int = 150, seed: int = 0,
                   sources: Sequence[SourceSpec] = SOURCES, repos: dict[str, Repo] | None = None,
                   dropped: dict | None = None) -> list[EvalClip]:
    """The evaluation clips, deterministically: per source its files in a seeded order (seed + CRC of the
    source name), keeping decodable ones that are neither an ESC-50 excerpt (`index`) nor an exact duplicate of
    an earlier kept file, until `cap` are kept. `dropped` (if given) receives {source: {reason: [rel paths]}}."""
    from training.esc50_check import sample_hash
    repos = REPOS if repos is None else repos
    clips: list[EvalClip] = []
    for spec in sources:
        repo = repos[spec.repo]
        base, commit = checkout(repo, root), repo.commit
        files = _files(base, spec)
        order = np.random.default_rng(seed + zlib.crc32(spec.name.encode())).permutation(len(files))
        seen: set[str] = set()
        why: dict[str, list[str]] = defaultdict(list)
        kept = 0
        for i in order:
            if kept >= cap:
                break
            f = files[i]
            rel = str(f.relative_to(base))
            try:
                digest = sample_hash(f)
                wave = read_audio(str(f))
            except (AudioError, RuntimeError) as e:
                why["undecodable"].append(rel)
                log.debug("%s: %s", f, e)
                continue
            if digest in seen:
                why["duplicate"].append(rel)
                continue
            seen.add(digest)
            if wave.size < 160:
                why["empty"].append(rel)
                continue
            if index is not None and (m := index.match(wave)) is not None:
                why["esc50_excerpt"].append(f"{rel} = {m[0]} (r={m[1]:.2f})")
                continue
            allowed = spec.allowed + FILE_ALLOWED.get(f.stem, ())
            clips.append(EvalClip(spec.name, spec.label, str(f), rel, commit, wave.size / 16000, allowed,
                                  spec.language))
            kept += 1
        if dropped is not None:
            dropped[spec.name] = {k: sorted(v) for k, v in why.items()}
        log.info("%s: %d files, kept %d, dropped %s", spec.name, len(files), kept,
                 {k: len(v) for k, v in why.items()})
    return clips


# ---- shortcut checks
SHORTCUT_LENGTHS_S = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
SHORTCUT_KINDS = (("silence", -120.0), ("white", -70.0), ("white", -55.0), ("white", -40.0),
                  ("pink", -70.0), ("pink", -55.0), ("pink", -40.0), ("thump", -30.0))


def thump(seconds: float, peak_dbfs: float = -30.0, rate_hz: int = 16000) -> np.ndarray:
    """Digital silence with one handling thump in the middle: a 60 Hz damped bump (25 ms decay) plus a
    broadband click 12 dB below it, peak at `peak_dbfs`."""
    n = int(round(seconds * rate_hz))
    x = np.zeros(n, np.float32)
    t = np.arange(int(0.08 * rate_hz)) / rate_hz
    env = np.exp(-t / 0.025)
    bump = np.sin(2 * np.pi * 60 * t) * env + 0.25 * np.random.default_rng(7).standard_normal(t.size) * env ** 4
    bump = bump / np.abs(bump).max() * 10 ** (peak_dbfs / 20)
    start = max(0, n // 2 - t.size // 4)
    m = min(t.size, n - start)
    x[start:start + m] = bump[:m]
    return x


def shortcut_signals(rate_hz: int = 16000) -> list[tuple[str, np.ndarray, float]]:
    """[(name, wave float32, hop_s)]: every kind x length as a whole file (hop 1 s), then padded last windows:
    61 s of digital silence at hop 60 s (window 2 holds 1 s of audio) and 7 s of -60 dBFS pink noise at 1 s."""
    out = []
    for kind, level in SHORTCUT_KINDS:
        for length in SHORTCUT_LENGTHS_S:
            wave = thump(length, level, rate_hz) if kind == "thump" else \
                synth_audio(f"synth:{kind}:{level:g}:{int(length * 1000)}", seconds=length, rate_hz=rate_hz)
            name = "silence" if kind == "silence" else f"{kind} {level:g} dBFS"
            out.append((f"{name} {length:g} s", wave, 1.0))
    out.append(("silence 61 s @hop 60 (padded last window)", np.zeros(61 * rate_hz, np.float32), 60.0))
    out.append(("pink -60 dBFS 7 s (padded last windows)", synth_audio("synth:pink:-60:7", 7.0, rate_hz), 1.0))
    return out


# ---- metrics (pure)
def top1_closed(clip_max: np.ndarray, label_ids: Sequence[str], truth: Sequence[str],
                subset: Sequence[str]) -> np.ndarray:
    """(N,) bool: truth[n] is the argmax of clip_max[n] (N, L) over the labels `subset` (ids in label_ids).
    Clips whose truth is not in `subset` count as wrong (a peer that cannot name the label)."""
    cols = [list(label_ids).index(s) for s in subset]
    pred = np.asarray(subset)[np.argmax(np.asarray(clip_max)[:, cols], axis=1)]
    return pred == np.asarray(truth)


def tagged(event_labels: Sequence[Sequence[str]], truth: Sequence[str]) -> np.ndarray:
    """(N,) bool: clip n has an event whose label is truth[n]."""
    return np.array([t in set(ev) for ev, t in zip(event_labels, truth)], bool)


def false_tags(event_labels: Sequence[str], allowed: Sequence[str]) -> int:
    return sum(e not in set(allowed) for e in event_labels)


def per_10min(count: int, seconds: float) -> float:
    return count / seconds * 600.0 if seconds > 0 else float("nan")


def rate_table(keys: Sequence[str], values: np.ndarray) -> dict[str, dict]:
    """{key: {"clips": n, "rate": mean of values}} in first-seen key order."""
    groups: dict[str, list[float]] = {}
    for k, v in zip(keys, values):
        groups.setdefault(k, []).append(float(v))
    return {k: {"clips": len(v), "rate": float(np.mean(v))} for k, v in groups.items()}


@dataclass
class Scored:
    """One clip's result under one tagger: label ids of its events and its max-over-windows scores."""
    clip: EvalClip
    clip_max: np.ndarray        # (L,) over the tagger's label ids
    events: list[str]           # label ids of the events, in time order


TimelineFn = Callable[[str, float | None], "object"]   # (path, hop_s) -> core.timeline.Timeline


def score_clips(clips: Sequence[EvalClip], timeline_fn: TimelineFn,
                progress: Callable[[int, int], None] | None = None) -> list[Scored]:
    from core.config import EventConfig
    from core.events import detect_events
    rule = EventConfig()
    out = []
    for i, c in enumerate(clips):
        tl = timeline_fn(c.path, c.hop_s)
        ids = [lab.id for lab in tl.labels]
        events = [ids[e.label_index] for e in sorted(detect_events(tl, rule), key=lambda e: e.start_s)]
        out.append(Scored(c, tl.scores.max(0), events))
        if progress:
            progress(i + 1, len(clips))
    return out


def summarise(scored: Sequence[Scored], label_ids: Sequence[str], id_of: dict[str, str],
              eval_labels: Sequence[str]) -> dict:
    """The tables: labelled clips (top-1 over `eval_labels`, tagged), per source, per class, speech per
    language; unlabelled sources: false tags per 10 minutes; shortcut files: tags."""
    lab = [s for s in scored if s.clip.label]
    res: dict = {}
    if lab:
        mapped = [c for c in eval_labels if id_of.get(c) in label_ids]
        truth = [id_of.get(s.clip.label, s.clip.label) for s in lab]
        ok = top1_closed(np.stack([s.clip_max for s in lab]), label_ids, truth, [id_of[c] for c in mapped])
        tg = tagged([s.events for s in lab], truth)
        src, cls = [s.clip.source for s in lab], [s.clip.label for s in lab]
        res["closed_set_labels"] = list(mapped)
        res["unmappable_eval_labels"] = [c for c in eval_labels if c not in mapped]
        res["top1"] = float(ok.mean())
        res["top1_macro_over_classes"] = float(np.mean([v["rate"] for v in rate_table(cls, ok).values()]))
        res["tagged"] = float(tg.mean())
        res["per_source"] = {k: {"clips": v["clips"], "top1": v["rate"], "tagged": t["rate"]} for (k, v), t in
                             zip(rate_table(src, ok).items(), rate_table(src, tg).values())}
        res["per_class"] = {k: {"clips": v["clips"], "top1": v["rate"], "tagged": t["rate"]} for (k, v), t in
                            zip(rate_table(cls, ok).items(), rate_table(cls, tg).values())}
        sp = [i for i, s in enumerate(lab) if s.clip.label == "speech"]
        if sp:
            res["speech_tagged"] = float(tg[sp].mean())
            res["speech_per_language"] = {
                k: {"clips": v["clips"], "tagged": v["rate"]}
                for k, v in rate_table([lab[i].clip.language for i in sp], tg[sp]).items()}
    name_of = {v: k for k, v in id_of.items()}
    amb = [s for s in scored if not s.clip.label and s.clip.source != "shortcut"]
    if amb:
        table: dict[str, dict] = {}
        for s in amb:
            allowed_ids = [id_of.get(a, a) for a in s.clip.allowed]
            t = table.setdefault(s.clip.source, {"clips": 0, "minutes": 0.0, "false_tags": 0, "labels": {}})
            t["clips"] += 1
            t["minutes"] += s.clip.duration_s / 60
            for e in s.events:
                if e not in allowed_ids:
                    t["false_tags"] += 1
                    n = name_of.get(e, e)
                    t["labels"][n] = t["labels"].get(n, 0) + 1
        for t in table.values():
            t["false_tags_per_10min"] = per_10min(t["false_tags"], t["minutes"] * 60)
        total_min = sum(t["minutes"] for t in table.values())
        res["false_tags"] = {"per_source": table, "minutes": total_min, "false_tags_per_10min":
                             per_10min(sum(t["false_tags"] for t in table.values()), total_min * 60)}
    short = [s for s in scored if s.clip.source == "shortcut"]
    if short:
        res["shortcut"] = {"files": len(short), "files_tagged": sum(bool(s.events) for s in short),
                           "tags": sum(len(s.events) for s in short),
                           "tagged_files": {s.clip.rel_path: [name_of.get(e, e) for e in s.events]
                                            for s in short if s.events}}
    return res


def shortcut_clips(folder: Path) -> list[EvalClip]:
    """Write the shortcut signals as 32-bit float WAV files (digital silence stays exact) under `folder`."""
    import soundfile as sf
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, (name, wave, hop) in enumerate(shortcut_signals()):
        path = folder / f"{i:02d}.wav"
        sf.write(path, wave, 16000, subtype="FLOAT")
        clips.append(EvalClip("shortcut", "", str(path), name, "", wave.size / 16000, (), "", hop))
    return clips


def clip_dicts(clips: Sequence[EvalClip]) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(c).items() if k != "path"} for c in clips]


def evaluate(model: str | None = None, root: str | Path = "/work/corpora/repos", out: str | None = None,
             peer: str | None = None, cap: int = 150, seed: int = 0, esc50: str | None = None,
             index_cache: str | None = None, threads: int = 1) -> dict:
    """Build the manifest and score it with `model` (Analyzer at 1 s hop, as the app) and optionally the peer."""
    import json
    import tempfile
    import time

    import torch

    from core.analyze import Analyzer
    from core.modelfile import load_model
    from core.scorer import Scorer
    from training.config import SHARED_DATA
    from training.esc50_check import Esc50Index
    from training.labels import known_labels

    torch.set_num_threads(threads)  # as report.py: more threads on a busy 2-core CPU run slower
    esc_dir = Path(esc50) if esc50 else SHARED_DATA / "esc50"
    cache = Path(index_cache) if index_cache else Path(tempfile.gettempdir()) / "ast-tagger-esc50-index.npz"
    t0 = time.time()
    index = Esc50Index.build(esc_dir, cache=cache)
    dropped: dict = {}
    clips = build_manifest(root, index, cap=cap, seed=seed, dropped=dropped)
    tmp = Path(tempfile.mkdtemp(prefix="ood-"))
    clips += shortcut_clips(tmp / "shortcut")
    manifest_s = time.time() - t0
    known = known_labels()
    id_of = {name: lab.id for name, lab in known.items()}
    eval_labels = [n for n in known if any(c.label == n for c in clips)]

    loaded = load_model(model)
    analyzers: dict[float, Analyzer] = {}

    def ours(path: str, hop_s: float | None):
        hop = hop_s or 1.0
        if hop not in analyzers:
            analyzers[hop] = Analyzer(Scorer(loaded, "cpu"), hop_s=hop)
        return analyzers[hop].analyze(path)

    taggers = {"model": (ours, [lab.id for lab in loaded.labels])}
    result: dict = {"model": str(model or "default"), "root": str(root), "cap": cap, "seed": seed,
                    "event_rule": "core.config.EventConfig() defaults", "hop_s": 1.0, "eval_labels": eval_labels,
                    "clips": {"labelled": sum(bool(c.label) for c in clips),
                              "unlabelled": sum(not c.label and c.source != "shortcut" for c in clips),
                              "shortcut": sum(c.source == "shortcut" for c in clips)},
                    "dropped": {k: {r: len(v) for r, v in d.items()} for k, d in dropped.items()},
                    "dropped_esc50_excerpts": {k: d["esc50_excerpt"] for k, d in dropped.items()
                                               if d.get("esc50_excerpt")},
                    "seconds": {"manifest": round(manifest_s, 1)}}
    if peer == "yamnet":
        from training.peer_yamnet import YamnetPeer
        from training.labels import label_set, KNOWN_NAMES
        yam = YamnetPeer(label_set(list(KNOWN_NAMES)), threads=threads)
        taggers["yamnet"] = (yam.timeline, [lab.id for lab in yam.labels])
        result["yamnet_unmappable_labels"] = yam.unmappable
    elif peer:
        raise ValueError(f"unknown peer {peer!r}; the one peer is 'yamnet'")
    for name, (fn, label_ids) in taggers.items():
        t = time.time()
        scored = score_clips(clips, fn)
        result[name] = summarise(scored, label_ids, id_of, eval_labels)
        result["seconds"][name] = round(time.time() - t, 1)
        log.info("%s scored %d clips in %.0f s", name, len(clips), time.time() - t)
    result["manifest"] = clip_dicts(clips)
    if out:
        Path(out).write_text(json.dumps(result, indent=1))
    return result


def to_markdown(result: dict) -> str:
    """The tables of docs/ood.md from an `evaluate` result: per source, per class, speech per language,
    false tags on ambience and music, shortcut files; one column per tagger."""
    names = [k for k in ("model", "yamnet") if k in result]
    head = "| | " + " | ".join(f"{n} top-1 | {n} tagged" for n in names) + " |\n|---" + "|---|---" * len(names) + "|\n"

    def rows(key: str) -> str:
        keys = list(result[names[0]][key])
        return "".join(f"| {k} ({result[names[0]][key][k]['clips']}) | " + " | ".join(
            f"{result[n][key][k]['top1']:.0%} | {result[n][key][k]['tagged']:.0%}" for n in names) + " |\n"
            for k in keys)

    overall = "| **all labelled clips** | " + " | ".join(
        f"**{result[n]['top1']:.1%}** | **{result[n]['tagged']:.1%}**" for n in names) + " |\n"
    macro = "| mean over classes | " + " | ".join(
        f"{result[n]['top1_macro_over_classes']:.1%} | " for n in names) + " |\n"
    out = ["### Per source (clips)\n\n" + head + rows("per_source") + overall,
           "### Per class (clips)\n\n" + head + rows("per_class") + overall + macro]
    langs = list(result[names[0]]["speech_per_language"])
    out.append("### Speech tagged, per language / source (clips)\n\n| | " + " | ".join(names) + " |\n|---"
               + "|---" * len(names) + "|\n" + "".join(
                   f"| {lang} ({result[names[0]]['speech_per_language'][lang]['clips']}) | " + " | ".join(
                       f"{result[n]['speech_per_language'][lang]['tagged']:.0%}" for n in names) + " |\n"
                   for lang in langs)
               + "| **all speech** | " + " | ".join(f"**{result[n]['speech_tagged']:.1%}**" for n in names) + " |\n")
    srcs = list(result[names[0]]["false_tags"]["per_source"])

    def ft(n: str, s: str) -> str:
        t = result[n]["false_tags"]["per_source"][s]
        labels = ", ".join(f"{k} {v}" for k, v in sorted(t["labels"].items(), key=lambda kv: -kv[1]))
        return f"{t['false_tags']} = {t['false_tags_per_10min']:.1f} ({labels or '-'})"
    out.append("### False tags on ambience and music (count = per 10 min (labels))\n\n| source (clips, min) | "
               + " | ".join(names) + " |\n|---" + "|---" * len(names) + "|\n" + "".join(
                   f"| {s} ({result[names[0]]['false_tags']['per_source'][s]['clips']}, "
                   f"{result[names[0]]['false_tags']['per_source'][s]['minutes']:.1f}) | "
                   + " | ".join(ft(n, s) for n in names) + " |\n" for s in srcs)
               + "| **all** | " + " | ".join(f"**{result[n]['false_tags']['false_tags_per_10min']:.1f} per 10 min**"
                                             for n in names) + " |\n")
    sc = "### Shortcut files (every tag is false)\n\n"
    for n in names:
        r = result[n]["shortcut"]
        sc += f"- **{n}**: {r['files_tagged']} of {r['files']} files tagged ({r['tags']} tags)"
        sc += (": " + "; ".join(f"{k}: {', '.join(v)}" for k, v in r["tagged_files"].items())) if r["tagged_files"] \
            else ""
        sc += "\n"
    out.append(sc)
    return "\n".join(out)
