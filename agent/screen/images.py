"""The image check: an on-device nudity detector on the frames the screen reader already grabbed.

Why NudeNet's 320n detector: it ships inside a registry package (PyPI ``nudenet`` 3.4.2, the
12 MB ONNX file in the wheel, MIT licence), runs on onnxruntime on one thread in about 60 to
130 ms per frame on this machine, and names what it found, so an event can say why it fired.
Only the model file is used: the package's own Python imports OpenCV for pre-processing, which
here is Pillow and numpy (pad to a square, 320x320 bilinear, RGB scaled to 0..1).

What fires: the largest score of the explicit classes (exposed breasts, genitalia, buttocks,
anus) at or above ``threshold`` fires ``image:nudity`` in the pornography category at severity
5 with that score, so the capture is sealed like every capture and blurred by default in the
dashboard (it blurs severity 5). Covered and neutral classes (faces, feet, belly) never fire.
The threshold (0.5) is not calibrated on real screens: no explicit fixture exists here, by rule.

Nothing is kept: the frame is scored and dropped; the event's screenshot is the monitor's
ordinary capture, sealed at once.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EXPLICIT", "LABELS", "Finding", "NudityCheck", "model_path"]

# The 320n model's classes, in its output order (nudenet/nudenet.py).
LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED",
    "BELLY_COVERED", "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE",
    "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
EXPLICIT = ("BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED",
            "ANUS_EXPOSED", "MALE_GENITALIA_EXPOSED")
_EXPLICIT_IDX = tuple(LABELS.index(name) for name in EXPLICIT)
SIZE = 320
RULE, CATEGORY, SEVERITY = "image:nudity", "pornography", 5


@dataclass(frozen=True, slots=True)
class Finding:
    label: str  # the explicit class that scored highest
    score: float


def model_path() -> Path | None:
    """The 320n.onnx inside the installed nudenet package, found without importing it."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"
    return path if path.is_file() else None


def preprocess(image: Any) -> Any:
    """A Pillow image as the model's input: padded right and below to a square, 320x320, RGB
    in 0..1, NCHW float32 (what nudenet does with OpenCV)."""
    import numpy as np
    from PIL import Image

    # Shrunk first, then padded: the same picture as padding the full frame and shrinking it,
    # without a full-size square in memory.
    side = max(image.size)
    size = (max(1, round(image.width * SIZE / side)), max(1, round(image.height * SIZE / side)))
    square = Image.new("RGB", (SIZE, SIZE))
    square.paste(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), (0, 0))
    x = np.asarray(square, dtype=np.float32)
    return (x / 255.0).transpose(2, 0, 1)[None]


def strongest(output: Any) -> Finding:
    """The explicit class with the highest score over all boxes of a YOLOv8 output (1, 22, N)."""
    import numpy as np

    classes = np.squeeze(output)[4:]  # 18 classes x N boxes
    best = max(_EXPLICIT_IDX, key=lambda i: float(classes[i].max()))
    return Finding(LABELS[best], float(classes[best].max()))


class NudityCheck:
    """Loads the model once (on the reader's thread); :meth:`check` scores one frame."""

    name = "nudenet 320n"

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self._session: Any = None
        self._input = ""

    def unavailable(self) -> str | None:
        if self._session is not None:
            return None
        path = model_path()
        if path is None:
            return "the nudenet package (its 320n.onnx) is not installed"
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return f"onnxruntime does not import ({exc})"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        # No arena and no memory pattern: about 16 MB less resident for one 320x320 frame at a
        # time (measured), at no cost we could see in the time per frame.
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(os.fspath(path), opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
            return f"the nudity model does not load ({exc})"
        self._input = self._session.get_inputs()[0].name
        return None

    def score(self, image: Any) -> Finding:
        return strongest(self._session.run(None, {self._input: preprocess(image)})[0])

    def check(self, image: Any) -> Finding | None:
        """The strongest explicit finding if it reaches the threshold, else None."""
        found = self.score(image)
        return found if found.score >= self.threshold else None

    def close(self) -> None:
        self._session = None
