"""Settings survive a restart; values that do not parse (an old or hand-edited file) fall back to defaults."""
from __future__ import annotations

from app.settings import AppSettings, load_settings, save_settings


def test_settings_round_trip(qsettings):
    settings = AppSettings(model_spec="/models/ast", compute="cpu", backend="openvino", precision="fp32", hop_s=0.5,
                           on_threshold=0.6, off_threshold=0.4, label_thresholds={"/m/0bt9lr": 0.7},
                           pinned=["/m/09x0r"],
                           input_device="USB mic", export_formats=["tags", "raven"], export_dir="/tmp/x",
                           recent_models=["/models/ast"], record=True, record_dir="/home/me/recordings",
                           auto_play=False)
    save_settings(qsettings, settings)
    assert load_settings(qsettings) == settings


def test_bad_saved_values_fall_back_to_defaults(qsettings):
    qsettings.setValue("hop_s", "not json")
    qsettings.setValue("pinned", '"a string, not a list"')
    qsettings.setValue("on_threshold", "0.2")
    qsettings.setValue("off_threshold", "0.9")              # off above on: the rule would be invalid
    qsettings.setValue("compute", '"cuda"')
    qsettings.setValue("backend", '"tensorrt"')             # not an engine this version knows
    qsettings.setValue("precision", '"bf16"')
    settings = load_settings(qsettings)
    defaults = AppSettings()
    assert settings.hop_s == defaults.hop_s and settings.pinned == []
    assert (settings.on_threshold, settings.off_threshold) == (defaults.on_threshold, defaults.off_threshold)
    assert settings.compute == "cuda"
    assert (settings.backend, settings.precision) == ("auto", "bf16")
    settings.event_config()                                  # a usable rule


def test_a_settings_file_from_before_a_setting_existed_gets_its_default(qsettings):
    save_settings(qsettings, AppSettings(hop_s=0.5, auto_play=False))
    qsettings.remove("auto_play")                            # as a file written by an older version has it
    settings = load_settings(qsettings)
    assert settings.hop_s == 0.5 and settings.auto_play is AppSettings().auto_play is True
    qsettings.setValue("auto_play", "1")                     # a number where a bool belongs: the default too
    assert load_settings(qsettings).auto_play is True
