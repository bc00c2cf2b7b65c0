"""The toolbar of run controls: model picker, CPU/GPU choice with its badge, hop, on/off thresholds.

GUI thread only. The thresholds are the document's event rule: the boxes send it their finished values and
show what it keeps (off at most on); the badge shows where the document's model runs. The model picker
and the hop are MainWindow's to act on (loading a model, restarting a stream).
"""
from __future__ import annotations

from pathlib import Path

import torch
from PySide6 import QtCore, QtWidgets

from core.hub import AUDIOSET_MB, AUDIOSET_REPO
from core.modelfile import DEFAULT_MODEL_NAME, shipped_models
from app.document import Document
from app.settings import AppSettings

__all__ = ["RunBar", "OPEN_MODEL", "OPEN_HF_DIR", "HUB_MODELS"]

OPEN_MODEL, OPEN_HF_DIR = "\x00file", "\x00dir"     # model_box entries that open a file dialog
# Released models the picker offers by Hub id (app.workers.model_loader downloads them once, with progress)
HUB_MODELS = {AUDIOSET_REPO: ("AST AudioSet (527 labels)",
                              f"The released AST AudioSet checkpoint ({AUDIOSET_REPO}): 527 sound classes. "
                              f"Downloaded once from huggingface.co ({AUDIOSET_MB} MB) into the Hugging Face "
                              "cache, then loaded from there")}


class RunBar(QtWidgets.QToolBar):
    def __init__(self, settings: AppSettings, document: Document, parent=None):
        super().__init__("Controls", parent)
        self.document = document
        self.setObjectName("controls")
        self.setMovable(False)
        self.model_box = QtWidgets.QComboBox()
        self.model_box.setMinimumWidth(220)
        self.model_box.setToolTip("The model that tags: the shipped default, the released AST AudioSet model "
                                  "(downloaded once), a model file (.safetensors), a Hugging Face AST "
                                  "directory or an original AST .pth")
        self.compute_box = QtWidgets.QComboBox()
        for text, key in (("Auto", "auto"), ("CPU", "cpu"), ("GPU", "cuda")):
            self.compute_box.addItem(text, key)
        if not torch.cuda.is_available():
            self.compute_box.model().item(2).setEnabled(False)
            self.compute_box.setItemData(2, "no CUDA GPU found", QtCore.Qt.ItemDataRole.ToolTipRole)
        self.compute_box.setCurrentIndex(max(0, self.compute_box.findData(settings.compute)))
        self.badge = QtWidgets.QLabel("…")
        self.badge.setToolTip("Where inference runs")
        self.badge.setContentsMargins(6, 2, 6, 2)
        self.hop = QtWidgets.QDoubleSpinBox(decimals=2, minimum=0.25, maximum=5.0, singleStep=0.25, suffix=" s")
        self.hop.setValue(settings.hop_s)
        self.hop.setToolTip("Seconds between windows (live and files)")
        self.on = QtWidgets.QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05)
        self.off = QtWidgets.QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.05)
        for box in (self.on, self.off):   # valueChanged on finished values only: typing "0.80" passes through
            box.setKeyboardTracking(False)  # 0, which would clamp off to 0 (the document keeps off <= on)
        self.on.setValue(document.on_threshold)
        self.off.setValue(document.off_threshold)
        self.on.setToolTip("An event opens when a label's smoothed score reaches this")
        self.off.setToolTip("... and stays open until it falls below this (hysteresis)")
        for text, widget in ((" Model: ", self.model_box), ("  Run on: ", self.compute_box), (None, self.badge),
                             ("  Hop: ", self.hop), ("  On: ", self.on), (" Off: ", self.off)):
            if text:
                self.addWidget(QtWidgets.QLabel(text))
            self.addWidget(widget)
        for box in (self.on, self.off):
            box.valueChanged.connect(lambda _: document.set_thresholds(self.on.value(), self.off.value()))
        document.ruleChanged.connect(self._rule_changed)
        document.modelChanged.connect(lambda: self.set_badge(document.model.device, document.model.inference))

    def _rule_changed(self) -> None:
        self.on.setValue(self.document.on_threshold)
        self.off.setValue(self.document.off_threshold)     # e.g. taken down to a lower on

    def fill_models(self, recent: list[str], current: str) -> None:
        """Shipped models, the released Hub models, recently used files and directories, then the two
        'Open…' entries."""
        box = self.model_box
        box.clear()
        box.addItem("Default (shipped)", "")
        for name in shipped_models():
            if name != DEFAULT_MODEL_NAME:
                box.addItem(f"{name} (shipped)", name)
        for repo_id, (text, tip) in HUB_MODELS.items():
            box.addItem(text, repo_id)
            box.setItemData(box.count() - 1, tip, QtCore.Qt.ItemDataRole.ToolTipRole)
        for spec in recent:
            if spec in HUB_MODELS:
                continue
            box.addItem(Path(spec).name or spec, spec)
            box.setItemData(box.count() - 1, spec, QtCore.Qt.ItemDataRole.ToolTipRole)
        box.addItem("Open model file…", OPEN_MODEL)
        box.addItem("Open Hugging Face directory…", OPEN_HF_DIR)
        box.setCurrentIndex(max(0, box.findData(current)))

    def set_badge(self, device: torch.device, inference: str = "") -> None:
        """`inference`: the engine as Scorer.describe() says it ("openvino bf16, 1 thread"), after the device."""
        gpu = device.type == "cuda"
        where = f"GPU: {torch.cuda.get_device_name(device)}" if gpu else "CPU"
        self.badge.setText(f"{where} · {inference}" if inference else where)
        self.badge.setStyleSheet(f"QLabel {{ background: {'#2e7d32' if gpu else '#555'}; color: white; "
                                 "border-radius: 3px; }")
