"""Side controls: the label panel (search filter, pins, per-label thresholds), the export dialog, the relabel
dialog of the review keys, the question asked before results that were never saved are lost, and the first
start's offer of the AudioSet model.

GUI thread only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.export import FORMATS
from core.hub import AUDIOSET_MB
from core.labels import LabelSet
from app.document import Document

__all__ = ["LabelPanel", "ExportDialog", "ExportRequest", "FolderField", "RelabelDialog", "FORMAT_TITLES", "ask_unsaved",
           "offer_audioset"]

FORMAT_TITLES = {
    "tags": "Tags CSV (events, the main table)",
    "audacity": "Audacity label track (.txt)",
    "raven": "Raven selection table (.txt)",
    "sv": "Sonic Visualiser regions (.csv)",
    "birdnet": "BirdNET-style CSV",
    "dcase": "DCASE / sed_eval event list (.tsv)",
    "scores": "Scores per window (.csv)",
    "params": "Parameters and provenance (.csv)",
}
_PIN, _NAME, _THRESHOLD = range(3)


class _InheritedThreshold(QtWidgets.QStyledItemDelegate):
    """Paints an empty On-threshold cell as the global threshold it inherits, greyed (the cell stays empty)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.global_on = 0.0

    def initStyleOption(self, option: QtWidgets.QStyleOptionViewItem, index: QtCore.QModelIndex) -> None:
        super().initStyleOption(option, index)
        if not option.text.strip():
            option.text = f"{self.global_on:.2f}"
            option.palette.setColor(QtGui.QPalette.ColorRole.Text,
                                    option.palette.color(QtGui.QPalette.ColorRole.PlaceholderText))


class LabelPanel(QtWidgets.QWidget):
    """Every label of the model: a search filter (what the bars may show), a pin per label (always on the
    bars and every strip) and an optional on threshold per label (empty = the global one).

    It observes the document (its model's labels, the global threshold it shows greyed) and sends the pins
    and thresholds to it; the filter is this panel's own (`changed` says it moved).
    """

    changed = QtCore.Signal()
    invalid = QtCore.Signal(str)      # a threshold that could not be used, in words

    def __init__(self, document: Document, parent=None):
        super().__init__(parent)
        self.document = document
        self.labels = LabelSet.from_names([])
        self.search = QtWidgets.QLineEdit(placeholderText="Filter labels (e.g. dog, bird, speech)…")
        self.search.setClearButtonEnabled(True)
        self.table = QtWidgets.QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Pin", "Label", "On"])      # narrow: the names get the width
        self.table.horizontalHeaderItem(_THRESHOLD).setToolTip("The label's own On threshold (grey: the global one)")
        self.table.setWordWrap(False)
        self.setMinimumWidth(200)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(_NAME, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(_PIN, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_THRESHOLD, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("Tick a label to pin it to the bars; type a threshold (0-1) to give it its own "
                              "(grey: the global On threshold it uses)")
        self._inherited = _InheritedThreshold(self.table)
        self.table.setItemDelegateForColumn(_THRESHOLD, self._inherited)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.no_match = QtWidgets.QLabel()
        self.no_match.setWordWrap(True)
        self.no_match.hide()
        layout.addWidget(self.search)
        layout.addWidget(self.no_match)
        layout.addWidget(self.table)
        self.search.textChanged.connect(self._filter)
        self.table.itemChanged.connect(self._item_changed)
        self._loading = False
        self._allowed = np.ones(0, dtype=bool)
        document.modelChanged.connect(self._model_changed)
        document.ruleChanged.connect(lambda: self.set_global_threshold(document.on_threshold))
        self.set_global_threshold(document.on_threshold)

    def _model_changed(self) -> None:
        self.set_labels(self.document.model.loaded.labels, self.document.pinned_ids, self.document.label_thresholds)
        self._send()

    def _send(self) -> None:
        """Send the pins and per-label thresholds to the document: this model's, so those of labels it lacks
        are dropped (nothing before a model is loaded, so saved ones survive until then)."""
        if len(self.labels):
            self.document.set_pinned_ids(self.pinned_ids())
            self.document.set_label_thresholds(self.thresholds())

    def set_labels(self, labels: LabelSet, pinned_ids: list[str], thresholds: dict[str, float]) -> None:
        self._loading = True
        self.labels = labels
        self.table.setRowCount(len(labels))
        for label in labels:
            pin = QtWidgets.QTableWidgetItem()
            pin.setFlags(QtCore.Qt.ItemFlag.ItemIsUserCheckable | QtCore.Qt.ItemFlag.ItemIsEnabled)
            pin.setCheckState(QtCore.Qt.CheckState.Checked if label.id in pinned_ids else QtCore.Qt.CheckState.Unchecked)
            name = QtWidgets.QTableWidgetItem(label.title)      # 'Chicken, rooster (hen)': ESC-50's name too
            name.setFlags(QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsSelectable)
            name.setToolTip(f"{label.name} ({', '.join((label.id, *label.dataset_names))})")
            value = thresholds.get(label.id)
            threshold = QtWidgets.QTableWidgetItem("" if value is None else f"{value:g}")
            self.table.setItem(label.index, _PIN, pin)
            self.table.setItem(label.index, _NAME, name)
            self.table.setItem(label.index, _THRESHOLD, threshold)
        self._loading = False
        self._filter(self.search.text())

    def _filter(self, text: str) -> None:
        words = text.split()
        allowed = np.array([label.matches(words) for label in self.labels], dtype=bool)
        for i, ok in enumerate(allowed):
            self.table.setRowHidden(i, not ok)
        self.no_match.setText(f"no label matches {text.strip()!r}; the bars show only pinned labels until it "
                              "is cleared")
        self.no_match.setVisible(bool(len(self.labels)) and not allowed.any())
        self._allowed = allowed
        self.changed.emit()

    def _item_changed(self, item: QtWidgets.QTableWidgetItem) -> None:
        if self._loading:
            return
        if item.column() == _THRESHOLD:
            text = item.text().strip()
            if text:
                try:
                    value = float(text)
                    if not 0.0 <= value <= 1.0:
                        raise ValueError
                except ValueError:
                    name = self.labels[item.row()].name
                    self._loading = True
                    item.setText("")
                    self._loading = False
                    self.invalid.emit(f"the threshold for {name!r} must be a number between 0 and 1, got "
                                      f"{text!r}; it uses the global threshold")
        self._send()

    def set_global_threshold(self, on: float) -> None:
        """The On threshold that labels without their own use (shown greyed in their empty cells)."""
        self._inherited.global_on = on
        self.table.viewport().update()

    def shown_threshold(self, index: int) -> str:
        """The On-threshold text that label `index`'s row shows (its own, or the inherited global one)."""
        option = QtWidgets.QStyleOptionViewItem()
        self._inherited.initStyleOption(option, self.table.model().index(index, _THRESHOLD))
        return option.text

    # what the rest of the window reads
    def allowed(self) -> np.ndarray:
        """(L,) bool: labels that match the search filter."""
        return self._allowed if len(self._allowed) == len(self.labels) else np.ones(len(self.labels), dtype=bool)

    def pinned(self) -> list[int]:
        return [i for i in range(self.table.rowCount())
                if self.table.item(i, _PIN).checkState() == QtCore.Qt.CheckState.Checked]

    def pinned_ids(self) -> list[str]:
        return [self.labels[i].id for i in self.pinned()]

    def thresholds(self) -> dict[str, float]:
        """label id -> its own on threshold."""
        out = {}
        for i in range(self.table.rowCount()):
            text = self.table.item(i, _THRESHOLD).text().strip()
            if text:
                out[self.labels[i].id] = float(text)
        return out

    def set_pinned(self, index: int, pinned: bool) -> None:
        self.table.item(index, _PIN).setCheckState(
            QtCore.Qt.CheckState.Checked if pinned else QtCore.Qt.CheckState.Unchecked)


@dataclass(frozen=True)
class ExportRequest:
    scope: str               # "file", "batch" (combined tables), "each" (a set per result), "live" or "last"
    formats: tuple[str, ...]
    out_dir: Path
    stem: str


class FolderField(QtWidgets.QWidget):
    """A folder to write to: its path (`edit`, the user's home when none is given) and Browse…."""

    def __init__(self, folder: str, title: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.edit = QtWidgets.QLineEdit(folder or str(Path.home()))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit)
        row.addWidget(browse)

    def _browse(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, self.title, self.edit.text())
        if folder:
            self.edit.setText(folder)


class ExportDialog(QtWidgets.QDialog):
    """Choose what to export (current file, all analysed files as combined tables or as a set per file, the
    live session), the formats of FORMATS.md, the folder and the file name stem."""

    def __init__(self, scopes: dict[str, tuple[str, str]], formats: list[str], out_dir: str, parent=None):
        """scopes: scope -> (title, default stem), only those that have something to export."""
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._scopes = scopes
        form = QtWidgets.QFormLayout(self)
        self.scope = QtWidgets.QComboBox()
        for key, (title, _) in scopes.items():
            self.scope.addItem(title, key)
        form.addRow("What", self.scope)
        box = QtWidgets.QGroupBox("Formats")
        grid = QtWidgets.QVBoxLayout(box)
        self.checks: dict[str, QtWidgets.QCheckBox] = {}
        for key in FORMATS:
            check = QtWidgets.QCheckBox(f"{FORMAT_TITLES.get(key, key)}  [*{FORMATS[key]}]")
            check.setChecked(key in formats)
            grid.addWidget(check)
            self.checks[key] = check
        form.addRow(box)
        folder = FolderField(out_dir, "Export to")
        self.folder = folder.edit
        form.addRow("Folder", folder)
        self.stem = QtWidgets.QLineEdit()
        form.addRow("File name", self.stem)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Save
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.scope.currentIndexChanged.connect(self._scope_changed)
        self._scope_changed()

    def _scope_changed(self) -> None:
        """The scope's default file name; a scope without one (each file: its own names) greys the field."""
        key = self.scope.currentData()
        if key is not None:
            self.stem.setText(self._scopes[key][1])
            self.stem.setEnabled(bool(self._scopes[key][1]))
            self.stem.setPlaceholderText("" if self.stem.isEnabled() else "each file's own name")

    def request(self) -> ExportRequest:
        formats = tuple(k for k, c in self.checks.items() if c.isChecked())
        return ExportRequest(self.scope.currentData(), formats, Path(self.folder.text()).expanduser(),
                             self.stem.text().strip())


class RelabelDialog(QtWidgets.QDialog):
    """Which label an event really is: a search field over the model's labels (a word of the display name,
    the id or the training set's name, as the Labels panel finds them) and the list it narrows; Enter takes
    the highlighted label, the first match while typing."""

    def __init__(self, labels: LabelSet, detected: int, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Relabel {labels[detected].name!r} as…")
        self.labels = labels
        self.search = QtWidgets.QLineEdit(placeholderText="Type to search the labels…")
        self.search.setClearButtonEnabled(True)
        self.list = QtWidgets.QListWidget()
        for label in labels:
            item = QtWidgets.QListWidgetItem(label.title)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, label.id)
            self.list.addItem(item)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.search.textChanged.connect(self._filter)
        self.list.itemDoubleClicked.connect(self.accept)
        self.list.setCurrentRow(detected)
        self.resize(360, 420)

    def _filter(self, text: str) -> None:
        words = text.split()
        shown = [label.matches(words) for label in self.labels]
        for row, visible in enumerate(shown):
            self.list.item(row).setHidden(not visible)
        self.list.setCurrentRow(shown.index(True) if any(shown) else -1)

    def chosen(self) -> str | None:
        """The id of the highlighted label (None: no label matches the search)."""
        item = self.list.currentItem()
        return item.data(QtCore.Qt.ItemDataRole.UserRole) if item is not None and not item.isHidden() else None


def ask_unsaved(parent: QtWidgets.QWidget, what: list[str], action: str) -> QtWidgets.QMessageBox.StandardButton:
    """Ask before live results that no export or recording holds are lost: Save (shown as "Export…"),
    Discard or Cancel. what: the sessions and what of each would be lost (app.document: what they found,
    their review marks), in words; action: what would lose them."""
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Question, "Unsaved live results",
                                f"{action.capitalize()} loses these live results, which no export or recording "
                                f"holds:\n\n" + "\n".join(f"• {w}" for w in what),
                                QtWidgets.QMessageBox.StandardButton.Save
                                | QtWidgets.QMessageBox.StandardButton.Discard
                                | QtWidgets.QMessageBox.StandardButton.Cancel, parent)
    box.button(QtWidgets.QMessageBox.StandardButton.Save).setText("Export…")
    box.setDefaultButton(QtWidgets.QMessageBox.StandardButton.Save)
    box.setEscapeButton(QtWidgets.QMessageBox.StandardButton.Cancel)
    return QtWidgets.QMessageBox.StandardButton(box.exec())


def offer_audioset(parent: QtWidgets.QWidget | None) -> bool:
    """The first start's question: download the released AudioSet model now? True for yes; either way the
    model picker offers it later."""
    box = QtWidgets.QMessageBox(
        QtWidgets.QMessageBox.Icon.Question, "Download the AudioSet model?",
        "The shipped model knows speech and the 50 ESC-50 sounds (animals, nature, household, urban).\n\n"
        "The released AST AudioSet model knows 527 sounds, music and instruments among them. It is a "
        f"{AUDIOSET_MB} MB download from huggingface.co, made once, and it runs slower on the CPU.\n\n"
        "Download it now? (Later: Model ▸ AST AudioSet (527 labels).)",
        QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No, parent)
    box.setObjectName("audioset-offer")
    box.button(QtWidgets.QMessageBox.StandardButton.Yes).setText(f"Download ({AUDIOSET_MB} MB)")
    box.button(QtWidgets.QMessageBox.StandardButton.No).setText("Use the shipped model")
    box.setDefaultButton(QtWidgets.QMessageBox.StandardButton.No)
    return box.exec() == QtWidgets.QMessageBox.StandardButton.Yes
