"""The "monitor under this window" arithmetic and the encoders (no display needed)."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from agent.capture import Monitor, encode, monitor_under
from agent.errors import CaptureError

PRIMARY = Monitor(0, 0, 1920, 1080)
LEFT = Monitor(-1280, 0, 1280, 1024)  # a monitor left of the primary: negative x
ABOVE = Monitor(0, -900, 1600, 900)  # above the primary: negative y
RIGHT = Monitor(1920, 0, 2560, 1440)


def test_window_on_primary() -> None:
    assert monitor_under([PRIMARY, LEFT, RIGHT], (100, 100, 800, 600)) == PRIMARY


def test_window_on_monitor_with_negative_x() -> None:
    assert monitor_under([PRIMARY, LEFT], (-1200, 50, 600, 400)) == LEFT


def test_window_on_monitor_with_negative_y() -> None:
    assert monitor_under([PRIMARY, ABOVE], (10, -800, 300, 200)) == ABOVE


def test_straddling_window_goes_to_larger_overlap() -> None:
    # 100 px on the left monitor, 500 px on the primary
    assert monitor_under([PRIMARY, LEFT], (-100, 10, 600, 300)) == PRIMARY
    assert monitor_under([PRIMARY, LEFT], (-500, 10, 600, 300)) == LEFT
    assert monitor_under([PRIMARY, RIGHT], (1800, 10, 600, 300)) == RIGHT


def test_window_off_every_screen_goes_to_nearest() -> None:
    assert monitor_under([PRIMARY, LEFT, RIGHT], (-5000, 100, 200, 200)) == LEFT
    assert monitor_under([PRIMARY, LEFT, RIGHT], (9000, 100, 200, 200)) == RIGHT
    assert monitor_under([PRIMARY, ABOVE], (100, -3000, 200, 100)) == ABOVE


def test_no_window_or_empty_window_means_primary() -> None:
    assert monitor_under([PRIMARY, LEFT], None) == PRIMARY
    assert monitor_under([PRIMARY, LEFT], (-900, 0, 0, 0)) == PRIMARY


def test_no_monitors_is_a_clear_error() -> None:
    with pytest.raises(CaptureError):
        monitor_under([], (0, 0, 10, 10))


@pytest.mark.parametrize(("fmt", "magic"), [("webp", b"RIFF"), ("png", b"\x89PNG"), ("jpeg", b"\xff\xd8")])
def test_encode_formats_and_scale(fmt: str, magic: bytes) -> None:
    src = PILImage.new("RGB", (400, 300), (200, 30, 30))
    img = encode(src, fmt, 70, scale=0.5)
    assert img.data.startswith(magic)
    assert (img.width, img.height) == (200, 150)
    assert img.media_type == f"image/{fmt}"
    assert PILImage.open(io.BytesIO(img.data)).size == (200, 150)


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(CaptureError, match="webp, png or jpeg"):
        encode(PILImage.new("RGB", (4, 4)), "gif")
