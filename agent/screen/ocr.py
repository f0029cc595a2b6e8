"""OCR with Debian's tesseract (5.3: libtesseract5, tesseract-ocr and its language data packages).

Why tesseract and not RapidOCR (measured on the rendered fixtures of tests/fixtures/screen_text.py,
BENCHMARKS.md "Screen reading"): both read the fixtures almost perfectly (character error rate
0.3 % against 0.0 %), but tesseract costs 0.14 s of CPU per window in-process (51 MB added to the
agent) where RapidOCR's ONNX models took 1 to 2 s and added 380 to 450 MB, four times the
issue's 100 MB budget.

Two ways to run it, the same engine and language data:

- :class:`LibTesseractOCR` (the default where ``libtesseract.so.5`` loads): its C API through
  ctypes, the model loaded once on the reader's thread. 137 ms of CPU per window (median).
- :class:`TesseractOCR`: the ``tesseract`` command, one process per read (257 ms: about 115 ms
  of it is start-up, loading the model again). Nothing stays resident, and a crash is a failed
  read, not a dead agent; the fallback where only the command is installed.

Both are limited to one thread (OMP_THREAD_LIMIT=1) and run at the reader thread's nice value.
The image goes to tesseract in memory and the text comes back in memory: nothing is written to
disk, nothing is logged.
"""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import subprocess
from typing import Any

from agent.errors import AgentError

__all__ = ["LibTesseractOCR", "OCRError", "TesseractOCR", "default_engine"]

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

    def close(self) -> None:
        pass


class LibTesseractOCR:
    """libtesseract's C API (capi.h) through ctypes: one ``TessBaseAPI``, used on one thread."""

    name = "libtesseract"

    def __init__(self, languages: str = "eng", library: str = "libtesseract.so.5") -> None:
        self.languages = languages
        self._library = library
        self._lib: Any = None
        self._api: Any = None

    def _load(self) -> str | None:
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # read when libgomp starts, just below
        try:
            lib = ctypes.CDLL(self._library)
        except OSError as exc:
            return f"{self._library} does not load ({exc}); Debian: apt install libtesseract5"
        lib.TessBaseAPICreate.restype = ctypes.c_void_p
        lib.TessBaseAPIInit3.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        lib.TessBaseAPISetImage.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                            ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.TessBaseAPIGetUTF8Text.argtypes = [ctypes.c_void_p]
        lib.TessBaseAPIGetUTF8Text.restype = ctypes.c_void_p
        for fn in ("TessDeleteText", "TessBaseAPIClear", "TessBaseAPIEnd", "TessBaseAPIDelete"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        api = lib.TessBaseAPICreate()
        if lib.TessBaseAPIInit3(api, None, self.languages.encode()) != 0:
            lib.TessBaseAPIDelete(api)
            return (f"libtesseract cannot load the language data {self.languages} (Debian: apt "
                    f"install {' '.join('tesseract-ocr-' + x for x in self.languages.split('+'))})")
        self._lib, self._api = lib, api
        return None

    def unavailable(self) -> str | None:
        """Loads the library and the model (on the calling thread); why not, in one line."""
        if self._api is not None:
            return None
        return self._load()

    def read(self, image: Any) -> str:
        if self._api is None:
            raise OCRError("libtesseract is not loaded")
        grey = image.convert("L")
        data = grey.tobytes()
        lib, api = self._lib, self._api
        lib.TessBaseAPISetImage(api, data, grey.width, grey.height, 1, grey.width)
        ptr = lib.TessBaseAPIGetUTF8Text(api)
        try:
            if not ptr:
                raise OCRError("libtesseract returned no text")
            return ctypes.string_at(ptr).decode("utf-8", "replace")
        finally:
            if ptr:
                lib.TessDeleteText(ptr)
            lib.TessBaseAPIClear(api)
            del data

    def close(self) -> None:
        if self._api is not None:
            self._lib.TessBaseAPIEnd(self._api)
            self._lib.TessBaseAPIDelete(self._api)
            self._api = None


def default_engine(languages: str = "eng") -> Any:
    """libtesseract in-process where it loads, else the tesseract command (checked when the
    reader starts: :meth:`unavailable` says why neither runs)."""
    lib = LibTesseractOCR(languages)
    try:
        ctypes.CDLL(lib._library)
    except OSError:
        return TesseractOCR(languages)
    return lib
