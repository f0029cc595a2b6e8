"""OCR with Debian's tesseract (5.3, package tesseract-ocr and its language data packages).

Why tesseract and not RapidOCR (measured on the rendered fixtures of tests/fixtures/screen_text.py,
BENCHMARKS.md "Screen reading"): both read the fixtures almost perfectly (character error rate
0.3 % against 0.0 %), but tesseract costs about 0.26 s of CPU per window at full resolution in a
process of its own that ends after each read (37 MB peak, nothing added to the agent), where
RapidOCR's ONNX models took 1 to 2 s per window and added 380 to 450 MB to the agent's RSS, four
times the issue's 100 MB budget.

Why a process per read and not a library binding: nothing stays resident between reads (the
agent's RSS does not grow), a crash or hang of the engine is a failed read (timeout) rather than
a dead agent, and the child inherits the reader thread's nice value. The price is about 115 ms of
start-up per read, paid only when a frame changed.

The image goes to tesseract on stdin as a grey PNG and the text comes back on stdout: nothing is
written to disk, nothing is logged.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from typing import Any

from agent.errors import AgentError

__all__ = ["OCRError", "TesseractOCR"]

READ_TIMEOUT_S = 20.0


class OCRError(AgentError):
    """A read failed (the engine crashed, hung or is missing); the text is never in the message."""


class TesseractOCR:
    """``tesseract stdin stdout -l LANGS``, one process per read, one thread (OMP_THREAD_LIMIT=1)."""

    name = "tesseract"

    def __init__(self, languages: str = "eng", binary: str | None = None) -> None:
        self.languages = languages
        self.binary = binary or shutil.which("tesseract")
        self._env = dict(os.environ, OMP_THREAD_LIMIT="1")

    def unavailable(self) -> str | None:
        """Why this engine cannot read, in one line; None if it can."""
        if not self.binary:
            return "tesseract is not installed (Debian: apt install tesseract-ocr)"
        try:
            done = subprocess.run([self.binary, "--list-langs"], capture_output=True, text=True,
                                  timeout=READ_TIMEOUT_S, env=self._env, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"tesseract does not run: {exc}"
        have = {ln.strip() for ln in (done.stdout + done.stderr).splitlines()}
        lacking = [lang for lang in self.languages.split("+") if lang not in have]
        if lacking:
            return (f"tesseract lacks the language data {'+'.join(lacking)} "
                    f"(Debian: apt install {' '.join('tesseract-ocr-' + x for x in lacking)})")
        return None

    def read(self, image: Any) -> str:
        """The text of a Pillow image, one line of screen per line of text."""
        if not self.binary:
            raise OCRError("tesseract is not installed")
        buf = io.BytesIO()
        image.convert("L").save(buf, "PNG", compress_level=1)
        try:
            done = subprocess.run([self.binary, "stdin", "stdout", "-l", self.languages],
                                  input=buf.getvalue(), capture_output=True,
                                  timeout=READ_TIMEOUT_S, env=self._env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise OCRError(f"tesseract took more than {READ_TIMEOUT_S:.0f} s") from exc
        except OSError as exc:
            raise OCRError(f"tesseract did not start: {exc}") from exc
        if done.returncode != 0:
            raise OCRError(f"tesseract exited with {done.returncode}")
        return done.stdout.decode("utf-8", "replace").replace("\f", "")
