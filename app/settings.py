"""What the app remembers between runs (QSettings), as one typed dataclass. GUI thread only."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields

from PySide6.QtCore import QSettings

from core.config import BACKENDS, PRECISIONS, EventConfig
from core.export import DEFAULT_FORMATS

__all__ = ["AppSettings", "load_settings", "save_settings", "default_qsettings"]

log = logging.getLogger(__name__)
_EVENTS = EventConfig()
_CHOICES = {"backend": BACKENDS, "precision": PRECISIONS}


@dataclass
class AppSettings:
    model_spec: str = ""                 # "" = the shipped default; else a file, HF directory or .pth path
    compute: str = "auto"                # "auto", "cpu" or "cuda"
    backend: str = "auto"                # "auto", "torch" or "openvino" (core.backends)
    precision: str = "auto"              # "auto", "fp32" or "bf16"
    hop_s: float = 1.0                   # seconds between windows, live and files
    on_threshold: float = _EVENTS.on_threshold
    off_threshold: float = _EVENTS.off_threshold
    label_thresholds: dict[str, float] = field(default_factory=dict)   # label id -> its own on threshold
    pinned: list[str] = field(default_factory=list)                    # label ids always on the bars
    input_device: str = ""               # device name; "" = the default input
    export_formats: list[str] = field(default_factory=lambda: list(DEFAULT_FORMATS))
    export_dir: str = ""
    recent_models: list[str] = field(default_factory=list)
    record: bool = False                 # live sessions are also recorded, as FLAC in record_dir
    record_dir: str = ""                 # "" = the user's Music folder (or home)
    auto_play: bool = True               # Play ▸ Auto-play: stepping to an event plays it

    def event_config(self) -> EventConfig:
        return EventConfig(on_threshold=self.on_threshold, off_threshold=self.off_threshold,
                           label_thresholds=tuple(self.label_thresholds.items()))


def default_qsettings() -> QSettings:
    return QSettings("ast-tagger", "ast-tagger")


def load_settings(qs: QSettings) -> AppSettings:
    """Settings from QSettings; a value that does not parse (an older or hand-edited file) is ignored."""
    settings = AppSettings()
    for f in fields(AppSettings):
        raw = qs.value(f.name)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
            default = getattr(settings, f.name)
            if isinstance(default, float):
                value = float(value)
            elif not isinstance(value, type(default)):
                raise TypeError(f"expected {type(default).__name__}")
            if (choices := _CHOICES.get(f.name)) and value not in choices:
                raise ValueError(f"expected one of {', '.join(choices)}")
            setattr(settings, f.name, value)
        except (TypeError, ValueError) as e:
            log.warning("ignoring the saved setting %s=%r (%s)", f.name, raw, e)
    try:
        settings.event_config()
    except ValueError as e:       # e.g. off above on, written by hand
        log.warning("ignoring the saved thresholds (%s)", e)
        settings.on_threshold, settings.off_threshold = _EVENTS.on_threshold, _EVENTS.off_threshold
    return settings


def save_settings(qs: QSettings, settings: AppSettings) -> None:
    for key, value in asdict(settings).items():
        qs.setValue(key, json.dumps(value))
    qs.sync()
