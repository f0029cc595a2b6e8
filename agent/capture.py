"""Screenshots of the screen in front: mss grabs, Pillow encodes.

Only the monitor under the active window is grabbed (the one the window overlaps most), unless
``all_monitors`` is set: gluing every screen together captures far more than the pupil was
looking at. The geometry is a pure function (``monitor_under``) so the awkward cases (negative
coordinates left of or above the primary monitor, windows straddling two monitors, windows off
every screen) are unit-tested without a display.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import CaptureError
from agent.sensors.events import Rect

__all__ = ["MEDIA_TYPES", "Capturer", "Image", "Monitor", "encode", "monitor_under"]

MEDIA_TYPES = {"webp": "image/webp", "png": "image/png", "jpeg": "image/jpeg"}
STRIP_ROWS = 216  # 1080 = 5 strips; about 1.6 MB each at 1920 px wide


@dataclass(frozen=True, slots=True)
class Monitor:
    left: int
    top: int
    width: int
    height: int

    def overlap(self, rect: Rect) -> int:
        x, y, w, h = rect
        dx = min(self.left + self.width, x + w) - max(self.left, x)
        dy = min(self.top + self.height, y + h) - max(self.top, y)
        return dx * dy if dx > 0 and dy > 0 else 0

    def distance2(self, rect: Rect) -> int:
        """Squared distance from the window's centre to this monitor (0 if inside)."""
        cx, cy = rect[0] + rect[2] // 2, rect[1] + rect[3] // 2
        dx = max(self.left - cx, 0, cx - (self.left + self.width - 1))
        dy = max(self.top - cy, 0, cy - (self.top + self.height - 1))
        return dx * dx + dy * dy


def monitor_under(monitors: Sequence[Monitor], rect: Rect | None) -> Monitor:
    """The monitor showing most of ``rect``; the nearest one if none does; the first if no rect.

    ``monitors`` are the physical monitors, the primary first (mss's ``monitors[1:]``).
    """
    if not monitors:
        raise CaptureError("no monitor to capture")
    if rect is None or rect[2] <= 0 or rect[3] <= 0:
        return monitors[0]
    best = max(monitors, key=lambda m: m.overlap(rect))
    if best.overlap(rect) > 0:
        return best
    return min(monitors, key=lambda m: m.distance2(rect))


@dataclass(frozen=True, slots=True)
class Image:
    data: bytes
    media_type: str
    width: int
    height: int


def encode(pil_image: Any, fmt: str = "webp", quality: int = 70, scale: float = 1.0) -> Image:
    """Encode a Pillow image as WebP, PNG or JPEG, downscaled by ``scale`` (0.1..1.0)."""
    from PIL import Image as PILImage

    fmt = fmt.lower()
    if fmt not in MEDIA_TYPES:
        raise CaptureError(f"unknown image format {fmt!r}; use webp, png or jpeg")
    img = pil_image
    if 0 < scale < 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, PILImage.Resampling.BILINEAR)
    out = io.BytesIO()
    if fmt == "png":
        img.save(out, "PNG", compress_level=1)  # speed over size: the envelope is the bottleneck
    elif fmt == "jpeg":
        img.save(out, "JPEG", quality=quality)
    else:
        img.save(out, "WEBP", quality=quality, method=0)
    return Image(out.getvalue(), MEDIA_TYPES[fmt], img.width, img.height)


class Capturer:
    """Grabs and encodes; one mss instance per thread (X connections are not shared)."""

    def __init__(self, fmt: str = "webp", quality: int = 70, scale: float = 1.0,
                 all_monitors: bool = False) -> None:
        self.fmt, self.quality, self.scale = fmt, quality, scale
        self.all_monitors = all_monitors
        self._local = threading.local()

    def _mss(self) -> Any:
        sct = getattr(self._local, "sct", None)
        if sct is None:
            import mss

            try:
                sct = mss.MSS() if hasattr(mss, "MSS") else mss.mss()
            except Exception as exc:  # mss raises its own ScreenShotError and XErrors
                raise CaptureError(f"cannot open the screen for capture: {exc}") from exc
            self._local.sct = sct
        return sct

    def monitors(self) -> list[Monitor]:
        mons = self._mss().monitors
        return [Monitor(m["left"], m["top"], m["width"], m["height"]) for m in mons[1:]] or [
            Monitor(**{k: mons[0][k] for k in ("left", "top", "width", "height")})
        ]

    def warm_up(self) -> None:
        """Open the screen and load the encoder now, so the first capture is not the slowest."""
        from PIL import Image as PILImage

        self.monitors()
        encode(PILImage.new("RGB", (16, 16)), self.fmt, self.quality)

    def grab(self, rect: Rect | None) -> Image:
        """The monitor under ``rect`` (or every monitor), encoded."""
        sct = self._mss()
        if self.all_monitors:
            whole = sct.monitors[0]
            area = {k: whole[k] for k in ("left", "top", "width", "height")}
        else:
            m = monitor_under(self.monitors(), rect)
            area = {"left": m.left, "top": m.top, "width": m.width, "height": m.height}
        try:
            img = self._grab_in_strips(sct, area)
        except Exception as exc:  # mss raises ScreenShotError and X errors
            raise CaptureError(f"screen capture failed: {exc}") from exc
        return encode(img, self.fmt, self.quality, self.scale)

    @staticmethod
    def _grab_in_strips(sct: Any, area: dict[str, int]) -> Any:
        """The area as a Pillow image, grabbed STRIP_ROWS rows at a time.

        A whole-screen grab holds the X image and mss's copy of it (8 MB each at 1920x1080)
        next to the Pillow image; strips keep only the Pillow image plus one strip resident.
        """
        from PIL import Image as PILImage

        width, height = area["width"], area["height"]
        img = PILImage.new("RGB", (width, height))
        for top in range(0, height, STRIP_ROWS):
            rows = min(STRIP_ROWS, height - top)
            shot = sct.grab({"left": area["left"], "top": area["top"] + top,
                             "width": width, "height": rows})
            # shot.raw, not shot.bgra: .bgra is another copy.
            strip = PILImage.frombuffer("RGB", shot.size, shot.raw, "raw", "BGRX", 0, 1)
            img.paste(strip, (0, top))
            del shot, strip
        return img

    def close(self) -> None:
        sct = getattr(self._local, "sct", None)
        if sct is not None:
            sct.close()
            self._local.sct = None
