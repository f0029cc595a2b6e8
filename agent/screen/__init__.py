"""What is on the screen (issue 16): the window in front read with OCR, fed to the same detectors.

- :mod:`agent.screen.change`: when a frame is worth reading (a perceptual hash of a down-scaled
  grey frame, a rate limit) and which lines of it are new (digests only, never text).
- :mod:`agent.screen.ocr`: the OCR engine (Debian's tesseract, measured against RapidOCR; see
  BENCHMARKS.md, "Screen reading").
- :mod:`agent.screen.images`: the nudity check (NudeNet's 320n ONNX model) on the same frames.
- :mod:`agent.screen.reader`: the :class:`ScreenReader` thread (nice 10, backs off when the
  machine is busy or on battery) that hands new text to the monitor as :class:`ScreenText`, and
  what the image check found as :class:`ScreenImage`.
"""

from agent.screen.change import ChangeDetector, LineMemory, dhash, hamming
from agent.screen.ocr import TesseractOCR
from agent.screen.reader import ScreenImage, ScreenReader, ScreenText

__all__ = ["ChangeDetector", "LineMemory", "ScreenImage", "ScreenReader", "ScreenText",
           "TesseractOCR", "dhash", "hamming"]
