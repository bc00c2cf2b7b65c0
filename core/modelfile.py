"""Model files: our safetensors format, Hugging Face AST directories, original AST `.pth` checkpoints.

Our format is one safetensors file; its metadata (string -> string) holds:
  format="ast-tagger", format_version, model_config, feature_config (JSON of the config dataclasses),
  labels (JSON [[index, id, name], ...]), provenance (JSON: data, recipe, metrics, code revision, ...).
Weights use the original AST parameter names (`blocks.0.attn.qkv.weight`, `mlp_head.1.bias`, ...).

Nothing here unpickles: `.pth` / `.bin` go through `torch.load(weights_only=True)` only.
Loading happens on whichever thread builds a tagger (analysis thread, GUI worker, CLI).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from core.atomic import atomic_write
from core.config import FeatureConfig, ModelConfig, from_dict, to_json
from core import hub
from core.errors import ConfigError, ModelFileError
from core.labels import ASSETS, LabelSet, audioset_labels
from core.model import AST

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMAT = "ast-tagger"
FORMAT_VERSION = "1"
MODELS_DIR = ASSETS / "models"
DEFAULT_MODEL_NAME = "default"

# Normalisation statistics of the released checkpoints, by their number of outputs (AST.md).
AUDIOSET_STATS = (-4.2677393, 4.5689974)
KNOWN_HEADS = {
    527: ("AudioSet", AUDIOSET_STATS),
    50: ("ESC-50", (-6.6268077, 5.358466)),
    35: ("Speech Commands V2", (-6.845978, 5.5654526)),
}


@dataclass
class LoadedModel:
    """A model ready for inference, with everything needed to feed it and name its outputs."""

    model: AST
    features: FeatureConfig
    labels: LabelSet
    name: str                 # what exports call it (file name, directory, or hub id)
    source_format: str        # "ast-tagger", "huggingface" or "ast-pth"
    provenance: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- our format

def save_model_file(path: str | Path, model: AST, features: FeatureConfig, labels: LabelSet,
                    provenance: dict | None = None) -> Path:
    """Write one self-describing safetensors file atomically (temp file + rename)."""
    path = Path(path)
    check_consistent(model.config, features, labels, str(path), "pass the labels and features of this model")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": to_json(model.config),
        "feature_config": to_json(features),
        "labels": labels.to_json(),
        "provenance": json.dumps(provenance or {}, sort_keys=True, default=str),
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    payload = save(tensors, metadata=metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb", file_mode=0o644) as f:   # a model file is meant to be shared
        f.write(payload)
    return path


REEXPORT = ("the file is damaged or was written by another tool; re-export it from its checkpoint "
            "(python -m training export CKPT OUT.safetensors)")


def _metadata(path: Path, metadata: dict[str, str], key: str, parse):
    """parse(metadata[key]), with any failure said as which entry of which file is wrong."""
    if key not in metadata:
        raise ModelFileError(f"{path} lacks the '{key}' entry of an {FORMAT} model file; {REEXPORT}")
    try:
        return parse(metadata[key])
    except (ValueError, TypeError) as e:  # JSONDecodeError and ConfigError are ValueErrors
        raise ModelFileError(f"{path}: bad {key}: {e}; {REEXPORT}") from e


def _provenance(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got a {type(value).__name__}")
    return value


def _load_ours(path: Path) -> LoadedModel:
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ModelFileError(f"{path} is not a readable model file ({type(e).__name__}: {e})") from e
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path} is a safetensors file but not an {FORMAT} model file "
                             f"(no '{FORMAT}' metadata); pass a model file made by `python -m training`, "
                             "a Hugging Face AST directory or an original AST .pth")
    model_cfg = _metadata(path, metadata, "model_config", lambda t: from_dict(ModelConfig, json.loads(t)))
    features = _metadata(path, metadata, "feature_config", lambda t: from_dict(FeatureConfig, json.loads(t)))
    labels = _metadata(path, metadata, "labels", LabelSet.from_json)
    provenance = _metadata(path, {"provenance": "{}", **metadata}, "provenance", _provenance)
    check_consistent(model_cfg, features, labels, str(path))
    check_declared_sizes(model_cfg, _header_shapes(path), str(path), REEXPORT)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ModelFileError(f"{path} is not a readable model file ({type(e).__name__}: {e})") from e
    model = _build(model_cfg, state, str(path))
    return LoadedModel(model, features, labels, path.stem, FORMAT, provenance)


# ----------------------------------------------------------------------------- Hugging Face

_HF_RENAMES = [
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.distillation_token$", "dist_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    # transformers 5 names its modules differently in memory (files on disk keep the classic names)
    (r"^layers\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^layers\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^layers\.(\d+)\.attention\.o_proj\.", r"blocks.\1.attn.proj."),
    (r"^layers\.(\d+)\.mlp\.", r"blocks.\1.mlp."),
    (r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^layernorm\.", "norm."),
    (r"^classifier\.layernorm\.", "mlp_head.0."),
    (r"^classifier\.dense\.", "mlp_head.1."),
]
_HF_QKV = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.attention\.(?:attention\.)?(query|key|value|q_proj|k_proj|v_proj)"
                     r"\.(weight|bias)$")
_QKV_PART = {"q_proj": "query", "k_proj": "key", "v_proj": "value"}


def hf_to_ast_state(hf_state: dict[str, T], cat: Callable[[list[T]], T] = torch.cat) -> dict[str, T]:
    """Rename Hugging Face `ASTForAudioClassification` weights to ours; q, k, v are stacked into qkv.

    The values may be tensors, or shapes with cat=`_stacked_shape` (to check a file before loading it).
    """
    state: dict[str, T] = {}
    qkv: dict[tuple[str, str], dict[str, T]] = {}
    for key, value in hf_state.items():
        key = key.removeprefix("audio_spectrogram_transformer.")
        if m := _HF_QKV.match(key):
            qkv.setdefault((m[1], m[3]), {})[_QKV_PART.get(m[2], m[2])] = value
            continue
        for pattern, repl in _HF_RENAMES:
            new, n = re.subn(pattern, repl, key)
            if n:
                state[new] = value
                break
        else:
            raise ModelFileError(f"unexpected weight '{key}' in a Hugging Face AST checkpoint")
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise ModelFileError(f"layer {layer} lacks some of query/key/value {kind}")
        state[f"blocks.{layer}.attn.qkv.{kind}"] = cat([parts["query"], parts["key"], parts["value"]])
    return state


def _stacked_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The shape torch.cat(tensors of these shapes) would have."""
    return (sum(shape[0] for shape in shapes), *shapes[0][1:])


def _hf_number(config: dict, key: str, default, where: str, whole: bool = True):
    """config[key] (or default) when it is a JSON number (a whole one if `whole`); else a ModelFileError."""
    value = config.get(key, default)
    kinds = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ModelFileError(f"{where}: {key} must be a {'whole number' if whole else 'number'}, got {value!r}; "
                             "fix config.json or save the model again with transformers' save_pretrained")
    if value <= 0:
        raise ModelFileError(f"{where}: {key} must be > 0, got {value!r}; fix config.json or save the model "
                             "again with transformers' save_pretrained")
    return value


def _hf_labels(config: dict, where: str) -> dict[int, str]:
    """id2label as {output index: name}, checked to name every output 0..n-1 once ({} when absent)."""
    raw = config.get("id2label") or {}
    if not isinstance(raw, dict):
        raise ModelFileError(f"{where}: id2label must be a JSON object {{\"0\": \"name\", ...}}, got a "
                             f"{type(raw).__name__}")
    try:
        id2label = {int(k): str(v) for k, v in raw.items()}
    except ValueError:
        raise ModelFileError(f"{where}: id2label keys must be whole numbers (output indices), got "
                             f"{sorted(raw)[:5]}") from None
    keys = sorted(id2label)
    if keys != list(range(len(keys))):
        shown = ", ".join(map(str, keys[:10])) + (", ..." if len(keys) > 10 else "")
        raise ModelFileError(f"{where}: id2label names outputs {shown}, but it must name every output from "
                             f"0 to {len(keys) - 1} exactly once; fix config.json")
    return id2label


def _load_hf_dir(path: Path, name: str | None = None) -> LoadedModel:
    where = f"{path}/config.json"
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{where} is not readable JSON ({e})") from e
    if not isinstance(config, dict):
        raise ModelFileError(f"{where} must hold a JSON object, not a {type(config).__name__}; it is not a "
                             "Hugging Face model config")
    model_type = config.get("model_type")
    if model_type != "audio-spectrogram-transformer":
        raise ModelFileError(f"{path} holds a Hugging Face '{model_type}' model, not an Audio Spectrogram "
                             "Transformer (model_type 'audio-spectrogram-transformer')")
    if config.get("hidden_act", "gelu") != "gelu":
        raise ModelFileError(f"{path}: hidden_act {config['hidden_act']!r} is not supported (only 'gelu')")
    eps = float(_hf_number(config, "layer_norm_eps", 1e-12, where, whole=False))
    id2label = _hf_labels(config, where)
    hidden = _hf_number(config, "hidden_size", 768, where)
    try:
        model_cfg = ModelConfig(
            num_classes=len(id2label) if id2label else _hf_number(config, "num_labels", 2, where),
            num_mel_bins=_hf_number(config, "num_mel_bins", 128, where),
            num_frames=_hf_number(config, "max_length", 1024, where),
            patch_size=_hf_number(config, "patch_size", 16, where),
            frequency_stride=_hf_number(config, "frequency_stride", 10, where),
            time_stride=_hf_number(config, "time_stride", 10, where),
            embed_dim=hidden,
            depth=_hf_number(config, "num_hidden_layers", 12, where),
            num_heads=_hf_number(config, "num_attention_heads", 12, where),
            mlp_ratio=_hf_number(config, "intermediate_size", 4 * hidden, where) / hidden,
            qkv_bias=bool(config.get("qkv_bias", True)),
            norm_eps=eps, head_norm_eps=eps,
        )
    except ConfigError as e:
        raise ModelFileError(f"{where}: {e}; fix config.json") from e
    fix = ("config.json's sizes (hidden_size, num_hidden_layers, num_labels or id2label, max_length, "
           "intermediate_size) must describe the weights beside it; fix config.json or download the model again")
    if (path / "model.safetensors").exists():
        weights = path / "model.safetensors"
        try:  # the sizes config.json declares are checked against the file's header before any loading
            check_declared_sizes(model_cfg, hf_to_ast_state(_header_shapes(weights), _stacked_shape), str(weights), fix)
            hf_state = load_file(str(weights))
        except (SafetensorError, OSError) as e:
            raise ModelFileError(f"{weights} is not a readable safetensors file ({e})") from e
    elif (path / "pytorch_model.bin").exists():
        weights = path / "pytorch_model.bin"
        hf_state = _torch_load(weights)  # no header to read first: the file's own size bounds this
    else:
        raise ModelFileError(f"{path} has config.json but neither model.safetensors nor pytorch_model.bin")
    state = hf_to_ast_state(hf_state)
    check_declared_sizes(model_cfg, {k: tuple(v.shape) for k, v in state.items()}, str(weights), fix)
    names = [id2label[i] for i in range(model_cfg.num_classes)] if id2label else None
    labels = _labels_for(model_cfg.num_classes, names)
    mean, std = KNOWN_HEADS.get(model_cfg.num_classes, (None, AUDIOSET_STATS))[1]
    pre = path / "preprocessor_config.json"
    if pre.exists():
        try:
            pre_cfg = json.loads(pre.read_text(encoding="utf-8"))
            mean, std = float(pre_cfg.get("mean", mean)), float(pre_cfg.get("std", std))
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise ModelFileError(f"{pre} is not readable JSON with numbers for mean and std ({e})") from e
    features = FeatureConfig(num_mel_bins=model_cfg.num_mel_bins, num_frames=model_cfg.num_frames,
                             mean=mean, std=std)
    model = _build(model_cfg, state, str(path))
    return LoadedModel(model, features, labels, name or str(path), "huggingface",
                       {"source": str(path), "format": "huggingface"})


# ----------------------------------------------------------------------------- original .pth

def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types here; all mean "not loadable"
        if "weights_only" in str(e) or "Unpickl" in type(e).__name__:
            raise ModelFileError(f"{path} contains pickled objects other than tensors; refusing to unpickle "
                                 "it (only plain weight dictionaries are loaded)") from e
        raise ModelFileError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFileError(f"{path} does not hold a dictionary of weight tensors")
    return obj


def _frames_for_columns(t: int, stride: int, patch: int) -> int:
    """The window T (frames) that gives t patch columns; prefers a multiple of 16 (1024, 512, 128)."""
    candidates = range((t - 1) * stride + patch, t * stride + patch)
    return next((T for T in candidates if T % 16 == 0), candidates[0])


def _load_pth(path: Path) -> LoadedModel:
    raw = _torch_load(path)
    state = {}
    for key, value in raw.items():
        key = key.removeprefix("module.").removeprefix("v.")
        if key.startswith(("head.", "head_dist.")):
            continue  # the unused 1000-way ImageNet heads of the released files
        state[key] = value
    try:
        D = state["cls_token"].shape[-1]
        num_classes = state["mlp_head.1.weight"].shape[0]
        patch = state["patch_embed.proj.weight"].shape[-1]
        num_tokens = state["pos_embed"].shape[1] - 2
    except KeyError as e:
        raise ModelFileError(f"{path} is not an AST checkpoint: it has no {e.args[0]} weight "
                             "(expected keys like module.v.cls_token, module.mlp_head.1.weight)") from None
    except IndexError:
        raise ModelFileError(f"{path}: cls_token, mlp_head.1.weight, patch_embed.proj.weight or pos_embed has "
                             "too few dimensions for an AST checkpoint") from None
    depth = len(_block_indices(state))
    try:
        base = ModelConfig(num_classes=num_classes, embed_dim=D, depth=depth, num_heads=max(1, D // 64),
                           patch_size=patch)
    except ConfigError as e:
        raise ModelFileError(f"{path}: its weights give no valid AST ({e})") from e
    f = base.grid[0]
    if num_tokens % f:
        raise ModelFileError(f"{path}: {num_tokens} patches do not form a {f}-row grid")
    model_cfg = dataclasses.replace(base, num_frames=_frames_for_columns(num_tokens // f, base.time_stride, patch))
    name, (mean, std) = KNOWN_HEADS.get(num_classes, (None, AUDIOSET_STATS))
    if name is None:
        log.warning("%s: %d outputs match no released AST head; using generic labels and AudioSet "
                    "statistics", path, num_classes)
    labels = _labels_for(num_classes, None)
    features = FeatureConfig(num_frames=model_cfg.num_frames, mean=mean, std=std)
    model = _build(model_cfg, state, str(path))
    return LoadedModel(model, features, labels, path.name, "ast-pth", {"source": str(path), "format": "ast-pth"})


# ----------------------------------------------------------------------------- shared

ESC50_CSV = ASSETS / "labels" / "esc50.csv"  # rows 0-49: ESC-50 targets in order (MIDs where clear); 50: speech


def _labels_for(num_classes: int, names: list[str] | None) -> LabelSet:
    """AudioSet labels (with MIDs) for 527 outputs, ESC-50 labels for an unnamed 50-output head (an
    original ESC-50 .pth), else the given names, else class_N."""
    if num_classes == 527:
        audioset = audioset_labels()
        if names is None or names == audioset.names:
            return audioset
    if num_classes == 50 and names is None and ESC50_CSV.exists():
        return LabelSet(LabelSet.from_csv(ESC50_CSV).labels[:50])
    if names is None:
        return LabelSet.generic(num_classes)
    return LabelSet.from_names(names)


def _block_indices(names) -> set[int]:
    """The N of every `blocks.N.` weight name."""
    return {int(m[1]) for k in names if (m := re.match(r"blocks\.(\d+)\.", k))}


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a safetensors file, read from its header (nothing is loaded)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ModelFileError(f"{path} is not a readable safetensors file ({type(e).__name__}: {e})") from e


def check_declared_sizes(cfg: ModelConfig, shapes: dict[str, tuple[int, ...]], where: str,
                         fix: str = REEXPORT) -> None:
    """Compare the sizes a config declares with the weights present, before anything is built.

    A few bytes of JSON must not be able to ask for a million blocks or ten million outputs: every size
    that scales what is built (depth, width, outputs, patch grid, MLP) must match a tensor in the file,
    so building costs no more than the file holds.
    """
    blocks = _block_indices(shapes)
    if len(blocks) != cfg.depth:
        raise ModelFileError(f"{where}: the config declares depth {cfg.depth} but the file holds weights for "
                             f"{len(blocks)} block{'s' * (len(blocks) != 1)}; {fix}")
    D, (f, t) = cfg.embed_dim, cfg.grid
    declared = [
        ("cls_token", (1, 1, D), f"embed_dim {D}"),
        ("mlp_head.1.weight", (cfg.num_classes, D), f"{cfg.num_classes} outputs"),
        ("patch_embed.proj.weight", (D, 1, cfg.patch_size, cfg.patch_size), f"patch_size {cfg.patch_size}"),
        ("pos_embed", (1, f * t + 2, D), f"a {f} x {t} patch grid ({cfg.num_frames} frames x "
                                         f"{cfg.num_mel_bins} mel bins, strides {cfg.frequency_stride}, "
                                         f"{cfg.time_stride})"),
        ("blocks.0.mlp.fc1.weight", (int(D * cfg.mlp_ratio), D), f"an MLP of {int(D * cfg.mlp_ratio)} units"),
    ]
    for key, want, what in declared:
        if key not in shapes:
            raise ModelFileError(f"{where}: the file has no {key} weight, which an AST needs; {fix}")
        if tuple(shapes[key]) != want:
            raise ModelFileError(f"{where}: the config declares {what} but {key} has shape "
                                 f"{tuple(shapes[key])}, not {want}; {fix}")


def check_consistent(cfg: ModelConfig, features: FeatureConfig, labels: LabelSet, where: str,
                     fix: str = REEXPORT) -> None:
    """One label per output, listed in output order, and features of the shape the model reads;
    fix: what the error tells the user to do."""
    if len(labels) != cfg.num_classes:
        raise ModelFileError(f"{where}: {len(labels)} labels for {cfg.num_classes} model outputs; every output "
                             f"needs exactly one label; {fix}")
    for position, label in enumerate(labels):
        if label.index != position:
            raise ModelFileError(
                f"{where}: label {label.name!r} at position {position} has index {label.index}; labels must be "
                f"listed in output order with index = position (0 to {cfg.num_classes - 1}), or scores, "
                f"thresholds and exports would name the wrong output; {fix}")
    if (features.num_frames, features.num_mel_bins) != (cfg.num_frames, cfg.num_mel_bins):
        raise ModelFileError(f"{where}: features of {features.num_frames} frames x {features.num_mel_bins} mel "
                             f"bins do not fit the model's input of {cfg.num_frames} frames x {cfg.num_mel_bins} "
                             f"mel bins; {fix}")


def _build(cfg: ModelConfig, state: dict[str, torch.Tensor], where: str) -> AST:
    """Build an AST and load every weight, checking that no key is missing or left over."""
    check_declared_sizes(cfg, {k: tuple(v.shape) for k, v in state.items()}, where,  # bounds the build below
                         "the weights and the sizes that come with them disagree; this file cannot be loaded")
    with torch.device("meta"):  # shapes only: every weight comes from `state`, so skip the random init
        model = AST(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise ModelFileError(f"{where}: weights do not fit an AST {cfg.embed_dim}x{cfg.depth}: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}")
    model.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, assign=True)
    return model.eval()


def shipped_models() -> dict[str, Path]:
    """Models in assets/models by name (file stem)."""
    return {p.stem: p for p in sorted(MODELS_DIR.glob("*.safetensors"))}


def load_model(spec: str | Path | None = None, num_frames: int | None = None,
               progress: hub.Progress | None = None) -> LoadedModel:
    """Load a model from any spec the user may give.

    spec: our `.safetensors` file, a Hugging Face AST directory, an original AST `.pth`, the name of a
    shipped model (None = the shipped default), or a Hub id such as `MIT/ast-finetuned-audioset-10-10-0.4593`.
    num_frames: window length to run at; the position table is cut or interpolated once here.
    progress: gets (bytes done, bytes in all) while a Hub id downloads (core.hub.download); never called for
    a model on disk or already in the cache.
    """
    if spec is None or str(spec) in shipped_models() or str(spec) == DEFAULT_MODEL_NAME:
        name = DEFAULT_MODEL_NAME if spec is None else str(spec)
        shipped = shipped_models()
        if name not in shipped:
            raise ModelFileError("no default model is shipped yet (assets/models/ has none); pass --model with "
                                 "a model file, a Hugging Face AST directory, an original AST .pth or a Hub id "
                                 "such as MIT/ast-finetuned-audioset-10-10-0.4593")
        loaded = _load_ours(shipped[name])
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / "config.json").exists():
                raise ModelFileError(f"{path} is a directory without config.json, not a Hugging Face model")
            loaded = _load_hf_dir(path)
        elif path.is_file():
            if path.stat().st_size == 0:
                raise ModelFileError(f"{path} is empty (0 bytes), not a model file")
            with open(path, "rb") as f:
                head = f.read(8)
            if path.suffix in (".pth", ".pt", ".bin", ".ckpt") or head[:2] == b"PK":
                loaded = _load_pth(path)
            else:
                loaded = _load_ours(path)
        elif hub.is_hub_id(str(spec)):
            loaded = _load_hf_dir(hub.download(str(spec), progress), name=str(spec))   # the cache, or the Hub once
        else:
            raise ModelFileError(f"model '{spec}' not found: not a file, a directory, a shipped model "
                                 f"({', '.join(shipped_models()) or 'none shipped'}) or a Hub id (owner/name)")
    if num_frames is not None and num_frames != loaded.features.num_frames:
        loaded.model.resize_window(num_frames)
        loaded.features = loaded.features.with_frames(num_frames)
    return loaded
