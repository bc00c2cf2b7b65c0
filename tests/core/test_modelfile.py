"""Model files: ours round-trips, Hugging Face directories and original .pth load unchanged and give
Hugging Face's logits; everything that is not a model is refused with a clear error."""
import json
import pickle
import time
import tracemalloc

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from core.cli import main as cli_main
from core.config import FeatureConfig, ModelConfig
from core.errors import ModelFileError
from core.labels import LabelSet, audioset_labels
from core.model import AST, resize_pos_embed
from core.modelfile import hf_to_ast_state, load_model, save_model_file

transformers = pytest.importorskip("transformers")


def hf_logits(path, x, original_eps=False):
    """Logits of transformers' AST. original_eps: give its LayerNorms the eps of the original AST code
    (1e-6 in the blocks and final norm, 1e-5 in the head) instead of Hugging Face's 1e-12, so that an
    original .pth holding the same weights is the same function."""
    hf = transformers.ASTForAudioClassification.from_pretrained(path).eval()
    if original_eps:
        for module in hf.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.eps = 1e-6
        hf.classifier.layernorm.eps = 1e-5
    with torch.no_grad():
        return hf(x).logits


def to_original_pth(hf_dir, out_path):
    """Write the weights of a Hugging Face directory in the layout of the original AST .pth files."""
    state = hf_to_ast_state(load_file(str(hf_dir / "model.safetensors")))
    original = {("module." if k.startswith("mlp_head") else "module.v.") + k: v for k, v in state.items()}
    D = state["cls_token"].shape[-1]
    original["module.v.head.weight"] = torch.zeros(1000, D)  # the unused ImageNet heads of the released files
    original["module.v.head_dist.weight"] = torch.zeros(1000, D)
    torch.save(original, out_path)
    return out_path


def test_hugging_face_directory_gives_hf_logits(tiny_hf_dir):
    loaded = load_model(tiny_hf_dir)
    x = torch.randn(3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = loaded.model(x)
    torch.testing.assert_close(ours, hf_logits(tiny_hf_dir, x), atol=1e-4, rtol=0)
    assert loaded.labels.names == ["Speech", "Dog", "Baby cry, infant cry", "Music"]
    assert loaded.features.num_frames == 128 and loaded.source_format == "huggingface"


def test_hugging_face_bin_directory(tiny_hf_dir, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "config.json").write_text((tiny_hf_dir / "config.json").read_text())
    torch.save(load_file(str(tiny_hf_dir / "model.safetensors")), bin_dir / "pytorch_model.bin")
    x = torch.randn(2, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(load_model(bin_dir).model(x), hf_logits(tiny_hf_dir, x), atol=1e-4, rtol=0)


def test_original_pth_gives_hf_logits(tiny_hf_dir, tmp_path):
    pth = to_original_pth(tiny_hf_dir, tmp_path / "audio_mdl.pth")
    loaded = load_model(pth)
    cfg = loaded.model.config
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.num_frames, cfg.num_classes) == (128, 2, 2, 128, 4)
    assert (cfg.norm_eps, cfg.head_norm_eps) == (1e-6, 1e-5)  # the original code's LayerNorms
    x = torch.randn(2, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), hf_logits(tiny_hf_dir, x, original_eps=True),
                                   atol=1e-4, rtol=0)


def test_ast_base_audioset_shapes_match_hugging_face(tmp_path):
    """AST-base (768 x 12, 1024 frames, 527 AudioSet outputs) through both loaders against transformers."""
    torch.manual_seed(0)
    names = audioset_labels().names
    cfg = transformers.ASTConfig(num_labels=527, id2label=dict(enumerate(names)),
                                 label2id={n: i for i, n in enumerate(names)})
    transformers.ASTForAudioClassification(cfg).save_pretrained(tmp_path / "hf")
    x = torch.randn(1, 1024, 128)
    from_dir = load_model(tmp_path / "hf")
    from_pth = load_model(to_original_pth(tmp_path / "hf", tmp_path / "audioset_10_10_0.4593.pth"))
    for loaded, ref in ((from_dir, hf_logits(tmp_path / "hf", x)),
                        (from_pth, hf_logits(tmp_path / "hf", x, original_eps=True))):
        assert sum(p.numel() for p in loaded.model.parameters()) == 86_594_063  # AST.md: 86.59 M
        assert loaded.labels[0].id == "/m/09x0r" and loaded.labels[0].name == "Speech"
        assert (loaded.features.mean, loaded.features.std, loaded.features.num_frames) == (-4.2677393, 4.5689974, 1024)
        with torch.no_grad():
            torch.testing.assert_close(loaded.model(x), ref, atol=1e-4, rtol=0)


def test_our_format_round_trip(tmp_path):
    cfg = ModelConfig(num_classes=3, num_frames=64, embed_dim=32, depth=1, num_heads=2)
    model = AST(cfg).eval()
    labels = LabelSet.from_names(["a", "b", "c, d"], ids=["/m/a", "/m/b", "cd"])
    features = FeatureConfig(num_frames=64, mean=-6.0, std=5.0)
    path = save_model_file(tmp_path / "m.safetensors", model, features, labels, {"data": "unit test"})
    loaded = load_model(path)
    assert loaded.model.config == cfg and loaded.features == features and loaded.labels == labels
    assert loaded.provenance == {"data": "unit test"} and loaded.source_format == "ast-tagger"
    x = torch.randn(2, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x), atol=0, rtol=0)
    assert not list(tmp_path.glob("*.tmp"))


def reference_resize(pos, f_dim, t_dim, old_f, old_t):
    """Transcription of the original AST code (ast_models.py) for a table trained at (old_f, old_t)."""
    D = pos.shape[-1]
    new = pos[:, 2:, :].detach().reshape(1, old_f * old_t, D).transpose(1, 2).reshape(1, D, old_f, old_t)
    if t_dim < old_t:
        new = new[:, :, :, int(old_t / 2) - int(t_dim / 2): int(old_t / 2) - int(t_dim / 2) + t_dim]
    else:
        new = torch.nn.functional.interpolate(new, size=(old_f, t_dim), mode="bilinear")
    new = new.reshape(1, D, f_dim * t_dim).transpose(1, 2)
    return torch.cat([pos[:, :2, :].detach(), new], dim=1)


@pytest.mark.parametrize("new_t", [12, 50, 101, 150])
def test_position_table_resize_matches_original_code(new_t):
    pos = torch.randn(1, 2 + 12 * 101, 16)
    torch.testing.assert_close(resize_pos_embed(pos, (12, 101), (12, new_t)), reference_resize(pos, 12, new_t, 12, 101))


def test_load_for_another_window_length(tiny_hf_dir):
    loaded = load_model(tiny_hf_dir, num_frames=64)
    assert loaded.features.num_frames == 64 and loaded.model.config.num_frames == 64
    assert loaded.model.pos_embed.shape == (1, 2 + 12 * 5, 128)
    with torch.no_grad():
        assert loaded.model(torch.randn(1, 64, 128)).shape == (1, 4)
        with pytest.raises(ValueError, match="expects input"):
            loaded.model(torch.randn(1, 128, 128))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("this is not a model"), "not a readable model file"),
    (lambda p: save_file({"w": torch.zeros(2)}, str(p)), "not an ast-tagger model file"),
])
def test_not_a_model_file(tmp_path, make, message):
    path = tmp_path / "model.safetensors"
    make(path)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_pth_with_pickle_payload_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"module.v.cls_token": Evil()}, f)
    with pytest.raises(ModelFileError, match="refusing to unpickle"):
        load_model(path)
    torch.save({"module.v.cls_token": torch.zeros(1), "extra": Evil()}, tmp_path / "evil2.pth")
    with pytest.raises(ModelFileError, match="refusing to unpickle"):
        load_model(tmp_path / "evil2.pth")
    assert "pwned" not in capsys.readouterr().out


def test_pth_that_is_not_an_ast(tmp_path):
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "resnet.pth")
    with pytest.raises(ModelFileError, match="not an AST checkpoint"):
        load_model(tmp_path / "resnet.pth")


def test_hugging_face_directory_of_another_architecture(tmp_path):
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    transformers.BertModel(cfg).save_pretrained(tmp_path / "bert")
    with pytest.raises(ModelFileError, match="'bert' model, not an Audio Spectrogram Transformer"):
        load_model(tmp_path / "bert")


def test_broken_hugging_face_directories(tiny_hf_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_hf_dir / "config.json").read_text())
    with pytest.raises(ModelFileError, match="neither model.safetensors nor pytorch_model.bin"):
        load_model(broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="not a readable safetensors"):
        load_model(broken)
    config = json.loads((tiny_hf_dir / "config.json").read_text())
    config["hidden_size"] = 64  # weights no longer fit the config
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").write_bytes((tiny_hf_dir / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match=r"declares embed_dim 64 but cls_token has shape \(1, 1, 128\)"):
        load_model(broken)


def test_unknown_spec_and_offline_hub_id(tmp_path, monkeypatch):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(ModelFileError, match="MIT/ast-finetuned-audioset-10-10-0.4593.*--model"):
        load_model("MIT/ast-finetuned-audioset-10-10-0.4593")


# ----------------------------------------------------------------------------- malformed files (issue 10, 6 and 7)

def tiny_model_file(tmp_path, name="tiny.safetensors", model_config=None, feature_config=None, labels=None):
    """A valid 3-label model file (32 x 1, 64 frames), then its metadata edited as a careless or hostile
    tool would: model_config / feature_config entries replaced, labels replaced by the given rows."""
    cfg = ModelConfig(num_classes=3, num_frames=64, embed_dim=32, depth=1, num_heads=2)
    path = save_model_file(tmp_path / name, AST(cfg), FeatureConfig(num_frames=64),
                           LabelSet.from_names(["a", "b", "c"]), {"data": "unit test"})
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    for key, changes in (("model_config", model_config), ("feature_config", feature_config)):
        metadata[key] = json.dumps({**json.loads(metadata[key]), **(changes or {})})
    if labels is not None:
        metadata["labels"] = json.dumps(labels)
    save_file(tensors, str(path), metadata=metadata)
    return path


def assert_refused_in_one_line(model, clip, tmp_path, capsys, message):
    """load_model raises a ModelFileError that matches `message`; `main.py analyze --model` exits 2 with
    one line and no traceback."""
    with pytest.raises(ModelFileError, match=message):
        load_model(model)
    code = cli_main(["analyze", str(clip), "--model", str(model), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


ABC = [[0, "a", "a"], [1, "b", "b"], [2, "c", "c"]]


@pytest.mark.parametrize("changes, message", [
    (dict(labels=ABC[:2]), r"2 labels for 3 model outputs"),
    (dict(labels=[ABC[1], ABC[0], ABC[2]]), r"label 'b' at position 0 has index 1"),
    (dict(labels=[ABC[0], ABC[1], [7, "c", "c"]]), r"label 'c' at position 2 has index 7"),
    (dict(labels={"a": 0}), r"labels must be a list of \[index, id, name\]"),
    (dict(model_config={"num_heads": 0}), r"num_heads must be .*, got 0"),
    (dict(model_config={"num_heads": "3"}), r"num_heads must be a whole number, got '3'"),
    (dict(model_config={"num_heads": 3}), r"embed_dim 32 is not divisible by num_heads 3"),
    (dict(model_config={"time_stride": 0}), r"time_stride must be .*, got 0"),
    (dict(model_config={"patch_size": 200}), r"patch_size 200 is larger than"),
    (dict(model_config={"norm_eps": -1.0}), r"norm_eps must be"),
    (dict(feature_config={"sample_rate_hz": 0}), r"sample_rate_hz must be .*, got 0"),
    (dict(feature_config={"frame_shift_samples": 0}), r"frame_shift_samples must be .*, got 0"),
    (dict(feature_config={"frame_length_samples": 1.5}), r"frame_length_samples must be a whole number"),
    (dict(feature_config={"num_frames": 32}), r"features of 32 frames x 128 mel bins.*model.*64 frames x 128"),
    (dict(feature_config={"num_mel_bins": 64}), r"features of 64 frames x 64 mel bins|64 frames x 64 mel"),
])
def test_malformed_model_file_is_refused_at_load(tmp_path, esc50_clip, capsys, changes, message):
    path = tiny_model_file(tmp_path, **changes)
    assert_refused_in_one_line(path, esc50_clip, tmp_path, capsys, message)


def test_model_config_that_is_not_an_object_is_refused(tmp_path, esc50_clip, capsys):
    path = tiny_model_file(tmp_path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    metadata["model_config"] = "[1, 2]"
    save_file(load_file(str(path)), str(path), metadata=metadata)
    assert_refused_in_one_line(path, esc50_clip, tmp_path, capsys, r"ModelConfig must be a JSON object")


def hf_dir_with(tiny_hf_dir, tmp_path, edit):
    """A copy of the tiny Hugging Face directory whose config.json is edit(config)."""
    out = tmp_path / "hf-edited"
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes((tiny_hf_dir / "model.safetensors").read_bytes())
    config = json.loads((tiny_hf_dir / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(edit(config)))
    return out


def with_keys(**changes):
    return lambda config: {**config, **changes}


def without_labels(**changes):
    return lambda config: {**{k: v for k, v in config.items() if k not in ("id2label", "label2id")}, **changes}


@pytest.mark.parametrize("edit, message", [
    (with_keys(num_attention_heads=0), r"num_attention_heads.*0"),
    (with_keys(hidden_size="abc"), r"hidden_size must be a whole number, got 'abc'"),
    (with_keys(layer_norm_eps="small"), r"layer_norm_eps must be a number, got 'small'"),
    (with_keys(id2label={"0": "Speech", "1": "Dog", "3": "Music"}), r"id2label.*0, 1, 3.*0 to 2"),
    (with_keys(id2label={"zero": "Speech"}), r"id2label keys must be whole numbers"),
    (with_keys(id2label=["Speech", "Dog"]), r"id2label must be a JSON object"),
    (lambda config: [config], r"config.json must hold a JSON object, not a list"),
])
def test_malformed_hugging_face_config_is_refused_at_load(tiny_hf_dir, tmp_path, esc50_clip, capsys, edit, message):
    assert_refused_in_one_line(hf_dir_with(tiny_hf_dir, tmp_path, edit), esc50_clip, tmp_path, capsys, message)


def refused_fast_and_small(model, message):
    """Loading `model` is refused in < 2 s with a Python heap peak < 50 MB (the sizes a config declares are
    checked against the tensors in the file before anything is built)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError, match=message):
            load_model(model)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0 and peak < 50e6, (elapsed, peak)


def test_declared_depth_far_beyond_the_weights_is_refused_before_building(tmp_path):
    path = tiny_model_file(tmp_path, model_config={"depth": 1_000_000})
    assert path.stat().st_size < 300_000
    refused_fast_and_small(path, r"depth 1000000 .* weights for 1 block")


def test_hugging_face_sizes_far_beyond_the_weights_are_refused_before_building(tiny_hf_dir, tmp_path):
    refused_fast_and_small(hf_dir_with(tiny_hf_dir, tmp_path / "labels", without_labels(num_labels=10_000_000)),
                           r"10000000 outputs but mlp_head.1.weight has shape \(4, 128\)")
    refused_fast_and_small(hf_dir_with(tiny_hf_dir, tmp_path / "layers", with_keys(num_hidden_layers=10_000)),
                           r"depth 10000 .* weights for 2 blocks")
    refused_fast_and_small(hf_dir_with(tiny_hf_dir, tmp_path / "hidden", with_keys(hidden_size=10**12)),
                           r"embed_dim 1000000000000 .* 128")


def test_weight_of_another_shape_inside_a_block_is_refused(tmp_path):
    path = tiny_model_file(tmp_path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    tensors["blocks.0.attn.proj.weight"] = torch.zeros(32, 16)
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ModelFileError, match=r"do not fit .*blocks.0.attn.proj.weight \(32, 16\) != \(32, 32\)"):
        load_model(path)
