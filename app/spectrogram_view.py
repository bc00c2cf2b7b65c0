"""The live log-mel spectrogram (the model's own features) over a label-by-time activity strip, x axes linked;
the display levels and Hz ticks that the Files tab's timeline (app.timeline_view) shares.

GUI thread only. Both images are pyqtgraph ImageItems fed uint8 data with fixed levels and a perceptual
colormap, so a redraw is one lookup-table pass and never a re-scan of levels. The live view keeps its
history in a double-width ring (each column is written twice, at i and i + W), so the newest W columns
are always one contiguous slice: scrolling copies nothing. Time on the x axis is stream seconds
(frame index x 10 ms), never the wall clock.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from core.config import FeatureConfig
from core.features import LOW_FREQ_HZ

__all__ = ["SpectrogramView", "SessionImage", "mel_ticks", "spectrogram_levels", "quantize"]

AXIS_WIDTH_PX = 150          # both left axes get this width, so the two plots share their x pixels
STRIP_AXIS_PX = 48           # the strip's time axis and its label, below its rows
SMOOTH_S = 0.06             # how far the live view may scroll past the newest audio between chunks
TICK_HZ = (50, 100, 200, 500, 1000, 2000, 4000, 8000)
SPEC_CMAP = pg.colormap.get("inferno")
STRIP_CMAP = pg.colormap.get("viridis")


def mel_ticks(features: FeatureConfig) -> list[tuple[float, str]]:
    """(y, text) axis ticks in Hz for an image whose row i is Kaldi mel bin i (spanning y in [i, i + 1])."""
    mel = lambda hz: 1127.0 * math.log(1.0 + hz / 700.0)  # noqa: E731
    low, high = mel(LOW_FREQ_HZ), mel(features.sample_rate_hz / 2)
    delta = (high - low) / (features.num_mel_bins + 1)
    ticks = []
    for hz in TICK_HZ:
        y = (mel(hz) - low) / delta - 0.5          # bin centre i sits at low + (i + 1) * delta
        if 0 <= y <= features.num_mel_bins:
            ticks.append((y, f"{hz // 1000} kHz" if hz >= 1000 else f"{hz} Hz"))
    return ticks


def spectrogram_levels(features: FeatureConfig) -> tuple[float, float]:
    """Fixed display levels in log-mel units from the model's feature statistics (quiet room -> loud)."""
    return features.mean - 1.5 * features.std, features.mean + 2.5 * features.std


def quantize(frames: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """(N, F) raw log-mel -> (F, N) uint8 image columns, 0 at levels[0], 255 at levels[1]."""
    lo, hi = levels
    scaled = (np.asarray(frames, dtype=np.float32).T - lo) * (255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).astype(np.uint8)


class SessionImage:
    """A whole live session's spectrogram, for browsing it after Stop, in bounded memory.

    Column c holds the max of quantized frames [c x frames_per_column, (c + 1) x frames_per_column), by
    absolute frame index, so lost audio stays dark and chunking does not matter. When a frame would land
    past 2 x max_columns, neighbouring columns are max-pooled in pairs and frames_per_column doubles: an hour
    is 12.8 MB of frames but at most 2 x max_columns x F bytes here (1.5 MB for 6000 columns of 128 bins).
    """

    def __init__(self, features: FeatureConfig, max_columns: int):
        self.levels = spectrogram_levels(features)
        self.frame_s = features.frame_shift_s
        self.max_columns = max_columns
        self.frames_per_column = 1
        self._image = np.zeros((features.num_mel_bins, 1024), dtype=np.uint8)    # (F, capacity)
        self._end_frame = 0                  # one past the newest frame seen

    def add(self, start_frame: int, frames: np.ndarray) -> None:
        """(N, F) raw log-mel frames whose first is absolute frame `start_frame`."""
        if not len(frames):
            return
        self._end_frame = max(self._end_frame, start_frame + len(frames))
        while (self._end_frame - 1) // self.frames_per_column >= 2 * self.max_columns:
            self._pool()
        columns = (start_frame + np.arange(len(frames))) // self.frames_per_column
        if columns[-1] >= self._image.shape[1]:
            grown = np.zeros((self._image.shape[0], max(2 * self._image.shape[1], columns[-1] + 1)), np.uint8)
            grown[:, :self._image.shape[1]] = self._image
            self._image = grown
        unique, first = np.unique(columns, return_index=True)
        pooled = np.maximum.reduceat(quantize(frames, self.levels), first, axis=1)     # (F, U)
        self._image[:, unique] = np.maximum(self._image[:, unique], pooled)

    def _pool(self) -> None:
        width = -(-self._image.shape[1] // 2) * 2
        image = np.zeros((self._image.shape[0], width), np.uint8)
        image[:, :self._image.shape[1]] = self._image
        self._image = np.maximum(image[:, 0::2], image[:, 1::2])
        self.frames_per_column *= 2

    @property
    def column_s(self) -> float:
        return self.frames_per_column * self.frame_s

    def image(self) -> np.ndarray:
        """(F, C) uint8 columns from frame 0 to the newest frame (a copy)."""
        return self._image[:, :-(-self._end_frame // self.frames_per_column)].copy()


def draw_strip(plot: pg.PlotItem, image_item: pg.ImageItem, names: list[str], x0_s: float, column_s: float,
               scores: np.ndarray) -> None:
    """Draw a label strip: row k (named names[k]) shows scores[k] (in [0, 1], NaN: not scored) as grey
    levels, column j over [x0_s + j column_s, x0_s + (j + 1) column_s). No rows or no columns: an empty strip."""
    K = len(names)
    if K == 0 or scores.size == 0:
        image_item.clear()
        plot.getAxis("left").setTicks([[], []])
        return
    image = np.clip(np.nan_to_num(scores, nan=0.0) * 255.0, 0, 255).astype(np.uint8)   # (K, C)
    image_item.setImage(image, levels=(0, 255), autoLevels=False)
    image_item.setRect(QtCore.QRectF(x0_s, 0, column_s * scores.shape[1], K))
    plot.getAxis("left").setTicks([[(k + 0.5, n) for k, n in enumerate(names)], []])
    plot.setYRange(0, K, padding=0)


class SpectrogramView(pg.GraphicsLayoutWidget):
    """The live spectrogram (top) and activity strip (bottom): `start_live` + `add_frames` + `refresh` per
    tick. A whole file or finished session is app.timeline_view.TimelinePanel's."""

    def __init__(self, history_s: float = 30.0, parent=None):
        super().__init__(parent=parent)
        self.history_s = history_s
        self.spec_plot = self.addPlot(row=0, col=0)
        self.strip_plot = self.addPlot(row=1, col=0)
        self.ci.layout.setRowStretchFactor(0, 3)
        self.ci.layout.setRowStretchFactor(1, 1)
        self.strip_plot.setXLink(self.spec_plot)
        for plot in (self.spec_plot, self.strip_plot):
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.getAxis("left").setWidth(AXIS_WIDTH_PX)
            plot.getViewBox().setMouseEnabled(x=True, y=False)
            for side in ("left", "bottom"):
                plot.getAxis(side).enableAutoSIPrefix(False)   # seconds stay seconds, Hz ticks stay as set
        self.spec_plot.setLabel("left", "frequency")
        self.strip_plot.setLabel("bottom", "time", units="s")
        self.strip_plot.getViewBox().invertY(True)          # first row (the strongest label) on top
        self.spec_image = pg.ImageItem(axisOrder="row-major")
        self.spec_image.setColorMap(SPEC_CMAP)
        self.spec_plot.addItem(self.spec_image)
        self.strip_image = pg.ImageItem(axisOrder="row-major")
        self.strip_image.setColorMap(STRIP_CMAP)
        self.strip_plot.addItem(self.strip_image)
        self.features = FeatureConfig()
        self.levels = spectrogram_levels(self.features)
        self._width = 0
        self._ring = np.zeros((self.features.num_mel_bins, 0), dtype=np.uint8)
        self._column = -1           # ring position of the newest column
        self._next_frame = 0        # absolute frame index expected next
        self._dirty = False
        self._arrival = 0.0         # perf_counter when the newest frames came (smooth scrolling)
        self._shown_end = 0.0       # right edge of the live view, s
        self.strip_rows: list[str] = []
        self.set_features(self.features)
        self.strip_plot.getAxis("left").setTicks([[], []])
        self.strip_plot.setYRange(0, 1, padding=0)
        self.spec_plot.setXRange(-history_s, 0, padding=0)      # an empty view reads as "the last 30 s"

    # ---- shared -------------------------------------------------------------------------------------

    def set_features(self, features: FeatureConfig) -> None:
        self.features = features
        self.levels = spectrogram_levels(features)
        F = features.num_mel_bins
        self.spec_plot.getAxis("left").setTicks([mel_ticks(features), []])
        self.spec_plot.setYRange(0, F, padding=0)
        self.spec_image.setLevels((0, 255))

    def set_strip(self, names: list[str], x0_s: float, column_s: float, scores: np.ndarray) -> None:
        """Activity strip: row k = names[k], column j = [x0 + j * column_s, x0 + (j + 1) * column_s),
        scores (K, C) in [0, 1] (NaN = not scored)."""
        self.strip_rows = list(names)
        K = len(names)
        line_px = QtGui.QFontMetrics(self.font()).height()      # a row per line of text, taken from the
        self.strip_plot.setMinimumHeight(max(3, K) * line_px + STRIP_AXIS_PX)   # spectrogram when needed
        draw_strip(self.strip_plot, self.strip_image, [_short(n) for n in names], x0_s, column_s, scores)

    # ---- live ---------------------------------------------------------------------------------------

    def start_live(self, features: FeatureConfig) -> None:
        """An empty, scrolling view of the last history_s seconds of a new stream."""
        self.set_features(features)
        self._width = round(self.history_s / features.frame_shift_s)
        self._ring = np.zeros((features.num_mel_bins, 2 * self._width), dtype=np.uint8)
        self._column, self._next_frame, self._dirty = self._width - 1, 0, True
        self._shown_end = 0.0
        self.set_strip([], 0.0, 1.0, np.zeros((0, 0)))
        self.refresh()

    def add_frames(self, start_frame: int, frames: np.ndarray) -> None:
        """New (N, F) raw log-mel frames starting at absolute frame `start_frame` (gaps stay dark)."""
        if self._width == 0 or len(frames) == 0:
            return
        gap = start_frame - self._next_frame
        if gap > 0:
            self._write(np.zeros((self.features.num_mel_bins, min(gap, self._width)), dtype=np.uint8))
        columns = quantize(frames[-self._width:], self.levels)       # (F, N)
        self._write(columns)
        self._next_frame = start_frame + len(frames)
        self._dirty = True
        self._arrival = time.perf_counter()

    def _write(self, columns: np.ndarray) -> None:
        W, n = self._width, columns.shape[1]
        idx = (self._column + 1 + np.arange(n)) % W
        self._ring[:, idx] = columns
        self._ring[:, idx + W] = columns
        self._column = int(idx[-1])

    @property
    def live_end_s(self) -> float:
        return self._next_frame * self.features.frame_shift_s

    def refresh(self) -> bool:
        """Per timer tick: redraw the live image if new frames came, and scroll; True when it drew.

        Audio comes in chunks (about 50 ms); between them the view keeps scrolling at the stream's pace
        for up to SMOOTH_S, so it moves at the timer's 30 frames per second instead of jumping.
        """
        if self._width == 0:
            return False
        W, shift = self._width, self.features.frame_shift_s
        end = self.live_end_s
        if self._dirty:
            view = self._ring[:, self._column + 1:self._column + 1 + W]             # (F, W), newest last
            self.spec_image.setImage(view, levels=(0, 255), autoLevels=False)
            self.spec_image.setRect(QtCore.QRectF(end - W * shift, 0, W * shift, self.features.num_mel_bins))
        elif self._next_frame == 0:
            return False
        ahead = min(time.perf_counter() - self._arrival, SMOOTH_S) if not self._dirty else 0.0
        if ahead > 0 and self._shown_end >= end + SMOOTH_S - 1e-9:
            return False                                  # no audio for a while: stand still
        self._shown_end = end + ahead
        self.spec_plot.setXRange(self._shown_end - W * shift, self._shown_end, padding=0)
        self._dirty = False
        return True


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"
