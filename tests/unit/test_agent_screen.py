"""The screen reader's parts without a display: the change detector, the line memory (dedup),
the pause when busy or on battery, and the reader's poll with a fake grab and a fake engine."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agent.screen.change import (
    THRESHOLD_BITS,
    ChangeDetector,
    LineMemory,
    dhash,
    grey_array,
    hamming,
    what_changed,
)
from agent.screen.reader import Power, ScreenReader, ScreenText
from agent.sensors.events import WindowInfo
from tests.fixtures.screen_text import FRAMES, GROOMING, Frame, cer, render

WIN = WindowInfo(wid=0x400001, title="Chat", app="chat", rect=(100, 100, 900, 420))


def chat(lines: tuple[str, ...], dark: bool = False) -> Any:
    return render(Frame("t", lines, "sans", 15, dark))


# --- the perceptual hash and the change detector -----------------------------------------------

def test_the_same_frame_hashes_the_same_and_a_new_message_flips_many_bits() -> None:
    a = dhash(chat(GROOMING[:3]))
    assert dhash(chat(GROOMING[:3])) == a
    assert hamming(dhash(chat(GROOMING[:4])), a) > 3 * THRESHOLD_BITS


def test_a_caret_blink_is_the_same_frame() -> None:
    from PIL import ImageDraw

    base = chat(GROOMING[:3])
    blink = base.copy()
    ImageDraw.Draw(blink).line((400, 300, 400, 315), fill=(0, 0, 0), width=1)
    assert hamming(dhash(blink), dhash(base)) <= THRESHOLD_BITS


def test_a_new_window_is_read_at_once_an_unchanged_one_never() -> None:
    d = ChangeDetector(interval_s=5)
    key = (1, "Chat")
    assert d.should_read(key, 0b1010, 0.0)
    d.read(key, 0b1010, 0.0)
    assert not d.should_read(key, 0b1010, 100.0)  # unchanged, however long
    assert not d.should_read(key, 0b1011, 100.0)  # one bit: a caret
    assert d.should_read((2, "Chat"), 0b1010, 0.1)  # another window
    assert d.should_read((1, "Chat - new message"), 0b1010, 0.1)  # a new title


def test_a_changing_window_is_read_at_most_every_interval() -> None:
    d = ChangeDetector(interval_s=5)
    key = (1, "Chat")
    d.read(key, 0, 0.0)
    changed = 0b1111_1111
    assert not d.should_read(key, changed, 4.9)
    assert d.skipped_rate == 1
    assert d.should_read(key, changed, 5.0)


def test_a_window_switched_back_to_as_it_was_is_not_read_again_until_repeat_s() -> None:
    d = ChangeDetector(interval_s=5, repeat_s=600)
    d.read((1, "Lesson"), 0b1010, 0.0)
    d.read((2, "Chat"), 0b0101, 10.0)
    assert not d.should_read((1, "Lesson"), 0b1011, 20.0)  # back, within a caret's bits
    assert d.skipped_back == 1
    assert d.should_read((2, "Chat"), 0b1111_0000, 30.0)  # back, but changed since
    assert d.should_read((2, "Chat"), 0b0101, 700.0)  # back after repeat_s: read again


# --- what changed: the lines to read ------------------------------------------------------------

def notes(lines: tuple[str, ...], dark: bool = False, size: int = 15, font: str = "sans",
          border: bool = False) -> Any:
    """A notes window: plain lines of text (no bubbles), optionally a dark frame line down
    the left and a scrollbar down the right, as many editors draw."""
    from PIL import Image, ImageDraw, ImageFont

    from tests.fixtures.screen_text import font_path

    bg, fg = ((30, 30, 30), (225, 225, 225)) if dark else ((255, 255, 255), (25, 25, 25))
    img = Image.new("RGB", (900, 500), bg)
    draw = ImageDraw.Draw(img)
    face = ImageFont.truetype(str(font_path(font)), size)
    for i, line in enumerate(lines):
        draw.text((20, 16 + i * int(size * 1.6)), line, font=face, fill=fg)
    if border:
        draw.rectangle((0, 0, 3, 499), fill=(90, 90, 90))
        draw.rectangle((884, 0, 899, 499), fill=(170, 170, 170))
        draw.rectangle((886, 40, 897, 120), fill=(110, 110, 110))
    return img


TYPED = ("Notes for Thursday", "the bus leaves at half past eight",
         "bring a packed lunch and a coat", "ask Sam about the science homework")


@pytest.mark.parametrize("dark,border,font,size", [(False, False, "sans", 15), (True, False, "sans", 14),
                                                   (False, True, "serif", 13), (True, True, "mono", 16)])
def test_a_new_line_typed_is_read_alone(dark: bool, border: bool, font: str, size: int) -> None:
    before = grey_array(notes(TYPED[:3], dark, size, font, border))
    after_img = notes(TYPED, dark, size, font, border)
    change = what_changed(before, grey_array(after_img))
    assert change is not None and not change.whole and not change.image_sized
    step = int(size * 1.6)
    line_top = 16 + 3 * step
    # the new line, whole (ascenders to descenders), and none of the lines above it
    assert line_top - step < change.top <= line_top and change.bottom >= line_top + size
    assert change.bottom - change.top < 2.2 * step


def test_a_word_added_to_a_line_reads_that_whole_line() -> None:
    before = grey_array(notes(TYPED[:3] + ("ask Sam",)))
    change = what_changed(before, grey_array(notes(TYPED)))
    assert change is not None and not change.whole
    assert change.top <= 16 + 3 * 24 and change.bottom >= 16 + 3 * 24 + 15


def test_a_caret_or_noise_is_not_read() -> None:
    from PIL import ImageDraw

    base = notes(TYPED)
    blink = base.copy()
    ImageDraw.Draw(blink).line((300, 64, 300, 80), fill=(0, 0, 0), width=2)
    assert what_changed(grey_array(base), grey_array(blink)) is None
    faint = base.copy()  # a hover shade: under PIXEL_DELTA grey levels
    ImageDraw.Draw(faint).rectangle((0, 200, 899, 260), fill=(235, 235, 235))
    assert what_changed(grey_array(base), grey_array(faint)) is None
    assert what_changed(grey_array(base), grey_array(base)) is None


def test_a_scroll_a_picture_or_a_new_size_is_read_whole() -> None:
    from PIL import ImageDraw

    page = tuple(f"line {i} of the notes on the trip" for i in range(18))
    scrolled = what_changed(grey_array(notes(page)), grey_array(notes(page[1:] + ("the end",))))
    assert scrolled is not None and scrolled.whole
    base = notes(TYPED)
    picture = base.copy()
    ImageDraw.Draw(picture).rectangle((500, 300, 700, 460), fill=(200, 120, 90))
    change = what_changed(grey_array(base), grey_array(picture))
    assert change is not None and change.image_sized
    assert what_changed(grey_array(base), grey_array(base.resize((800, 500)))).whole  # type: ignore[union-attr]
    assert what_changed(None, grey_array(base)).whole  # type: ignore[union-attr]


def test_ocr_of_the_changed_lines_reads_the_new_line(engine: Any) -> None:
    after = notes(TYPED)
    change = what_changed(grey_array(notes(TYPED[:3])), grey_array(after))
    assert change is not None and not change.whole
    text = engine.read(after.crop((0, change.top, after.width, change.bottom)))
    assert cer(text, TYPED[3]) < 0.05, text


def test_typing_is_read_line_by_line_and_the_image_check_waits_for_a_picture() -> None:
    from PIL import ImageDraw

    class Counts:
        name = "fake"
        checks = 0

        def unavailable(self) -> None:
            return None

        def check(self, image: Any) -> None:
            Counts.checks += 1

        def close(self) -> None:
            pass

    engine = FakeEngine()
    sizes: list[tuple[int, int]] = []
    read = engine.read
    engine.read = lambda image: sizes.append(image.size) or read(image)  # type: ignore[method-assign]
    frames = [notes(TYPED[:2])]
    r = ScreenReader(lambda s: None, interval_s=5, engine=engine, image_check=Counts(),
                     grab=lambda w: frames[-1], power=_power(0, None))
    r.window_changed(WIN, 0.0)
    assert r.poll(0.5) and sizes[-1] == (900, 500) and Counts.checks == 1
    for i, t in ((3, 10.0), (4, 20.0)):
        frames.append(notes(TYPED[:i]))
        assert r.poll(t)
        assert sizes[-1][0] == 900 and sizes[-1][1] < 60  # the new line, not the window
    assert Counts.checks == 1 and r.partial_reads == 2
    picture = frames[-1].copy()
    ImageDraw.Draw(picture).rectangle((500, 250, 700, 460), fill=(200, 120, 90))
    frames.append(picture)
    assert r.poll(30.0) and Counts.checks == 2


# --- dedup: lines already handed on ---------------------------------------------------------

def test_only_new_lines_go_on_and_text_left_on_screen_stays_known() -> None:
    m = LineMemory(repeat_s=600)
    assert m.new_lines("hey\ndont tell your parents\n\n  --- \n", 0.0) == \
        ["hey", "dont tell your parents"]
    assert m.new_lines("hey\ndont  tell your Parents\nsee you at 4", 10.0) == ["see you at 4"]
    # still on screen at 590 s: its digest was refreshed, so it is still known at 1000 s
    assert m.new_lines("dont tell your parents", 590.0) == []
    assert m.new_lines("dont tell your parents", 1000.0) == []
    assert m.new_lines("dont tell your parents", 1600.0) == ["dont tell your parents"]


def test_lines_above_a_partial_read_stay_known_while_the_window_is_read() -> None:
    """A chat's history is not in the rows a new message changes; a partial read of the window
    keeps it known, so a whole read after ``repeat_s`` does not judge (and fire on) it again."""
    chat, notes = (1, "Chat"), (2, "Notes")
    m = LineMemory(repeat_s=600)
    assert m.new_lines("hey\ndont tell your parents", 0.0, chat, whole=True) == \
        ["hey", "dont tell your parents"]
    m.new_lines("homework plan", 5.0, notes, whole=True)
    for t in (300.0, 700.0, 1100.0):  # new messages below, read alone
        m.touch(chat, t)
        assert m.new_lines(f"message at {t:g}", t, chat, whole=False) == [f"message at {t:g}"]
    # back to the chat and read whole: its history never left the screen
    assert m.new_lines("hey\ndont tell your parents\nmessage at 1100", 1200.0, chat,
                       whole=True) == []
    # the notes window was not read since 5 s: its line is forgotten as before
    assert m.new_lines("homework plan", 1200.0, notes, whole=True) == ["homework plan"]
    # a whole read replaces what the chat shows: a line scrolled away is no longer kept alive
    # ("message at 300" left the screen at 1200; last refreshed by the touch at 1100)
    m.touch(chat, 1750.0)
    assert m.new_lines("hey\nmessage at 300", 1750.0, chat, whole=False) == ["message at 300"]


def test_the_line_memory_keeps_digests_never_text_and_is_bounded() -> None:
    m = LineMemory(repeat_s=600, capacity=3)
    m.new_lines("one\ntwo\nthree\nfour\nour little secret", 0.0)
    assert len(m) == 3
    assert all(isinstance(k, bytes) and len(k) == 16 for k in m._seen)
    assert b"secret" not in b"".join(m._seen)


# --- busy and battery ---------------------------------------------------------------------------

def _power(cpu: float, battery: Any, **kw: Any) -> Power:
    p = Power(kw.get("busy_pct", 80.0), kw.get("on_battery_ok", False))
    p._psutil = SimpleNamespace(cpu_percent=lambda interval=None: cpu,  # type: ignore[assignment]
                                sensors_battery=lambda: battery)
    return p


def test_reading_pauses_when_busy_or_on_battery() -> None:
    plugged = SimpleNamespace(power_plugged=True)
    unplugged = SimpleNamespace(power_plugged=False)
    assert _power(10, None).pause_reason(0) is None  # a desktop: no battery
    assert _power(10, plugged).pause_reason(0) is None
    assert _power(95, None).pause_reason(0) == "busy"
    assert _power(10, unplugged).pause_reason(0) == "on battery"
    assert _power(10, unplugged, on_battery_ok=True).pause_reason(0) is None
    assert _power(100, None, busy_pct=100).pause_reason(0) is None  # 100: never pause


# --- the reader's poll, with a fake grab and engine -----------------------------------------------

class FakeEngine:
    name = "fake"

    def __init__(self) -> None:
        self.reads = 0
        self.text = ""

    def unavailable(self) -> None:
        return None

    def read(self, image: Any) -> str:
        self.reads += 1
        return self.text

    def close(self) -> None:
        pass


def reader(frames: list[Any], engine: FakeEngine, cpu: float = 0.0) -> tuple[ScreenReader, list]:
    got: list[ScreenText] = []
    r = ScreenReader(got.append, interval_s=5, engine=engine, images=False,
                     grab=lambda w: frames[-1], power=_power(cpu, None))
    return r, got


def test_the_same_message_left_open_is_read_and_delivered_once() -> None:
    engine, frames = FakeEngine(), [chat(GROOMING[:4])]
    r, got = reader(frames, engine)
    engine.text = "\n".join(GROOMING[:4])
    r.window_changed(WIN, at=1.0)
    assert r.poll(1.5)
    for t in range(2, 60, 2):  # polled every 2 s for a minute: unchanged, never read again
        assert not r.poll(float(t))
    assert engine.reads == 1 and len(got) == 1
    assert got[0].text == "\n".join(GROOMING[:4]) and got[0].at == 1.0 and got[0].window == WIN
    # a new message: read at the next poll after the interval, and only the new line goes on
    frames.append(chat(GROOMING))
    engine.text = "\n".join(GROOMING)
    assert r.poll(61.0)
    assert got[-1].text == GROOMING[4]
    # focus elsewhere and back as it was read: not read again, nothing new to deliver
    r.window_changed(WindowInfo(2, "Notes", "x", (0, 0, 500, 500)), 70.0)
    assert r.poll(70.5)
    reads = engine.reads
    r.window_changed(WIN, 80.0)
    assert not r.poll(80.5)
    assert engine.reads == reads and r.detector.skipped_back == 1 and len(got) == 2
    # ... but a change there since is read, and measured from the frame read there
    frames.append(chat(GROOMING + ("see you at 4",)))
    engine.text = "see you at 4"
    assert r.poll(90.0)
    assert got[-1].text == "see you at 4" and r.partial_reads == 2


def test_nothing_is_grabbed_while_monitoring_is_off_or_the_machine_is_busy() -> None:
    engine = FakeEngine()
    grabs: list[int] = []
    r = ScreenReader(lambda s: None, engine=engine, power=_power(99, None), images=False,
                     grab=lambda w: grabs.append(1) or chat(GROOMING[:1]))
    r.window_changed(WIN, 0.0)
    assert not r.poll(1.0)
    assert r.paused == "busy" and r._backoff >= r.poll_s
    r.active = False
    r._power = _power(0, None)
    assert not r.poll(2.0)
    assert grabs == [] and engine.reads == 0
    r.active = True
    assert r.poll(3.0)  # the pending focus change is read once the pause ends
    assert r.paused is None and r._backoff == 0.0


# --- the engine on the rendered fixtures (tesseract, if installed) ------------------------------

@pytest.fixture(scope="module", params=["libtesseract", "tesseract"])
def engine(request: pytest.FixtureRequest) -> Any:
    from agent.screen.ocr import LibTesseractOCR, TesseractOCR

    made = LibTesseractOCR() if request.param == "libtesseract" else TesseractOCR()
    why = made.unavailable()
    if why is not None:
        pytest.skip(why)
    yield made
    made.close()


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f.name)
def test_tesseract_reads_the_rendered_fixtures(engine: Any, frame: Frame) -> None:
    assert cer(engine.read(render(frame)), frame.truth) < 0.03


def test_the_default_engine_is_libtesseract_where_it_loads() -> None:
    from agent.screen.ocr import LibTesseractOCR, TesseractOCR, default_engine

    probe = LibTesseractOCR()
    if probe.unavailable() is None:
        probe.close()
        assert isinstance(default_engine(), LibTesseractOCR)
    why = TesseractOCR(binary="/nonexistent/tesseract").unavailable()
    assert why is not None and why.startswith("tesseract does not run")
    why = LibTesseractOCR(library="libnot-there.so.0").unavailable()
    assert why is not None and why.startswith("libnot-there.so.0 does not load")


# --- the image check (nudenet's 320n model, if installed) ---------------------------------------

@pytest.fixture(scope="module")
def nudity() -> Any:
    from agent.screen.images import NudityCheck

    check = NudityCheck(threshold=0.5)
    why = check.unavailable()
    if why is not None:
        pytest.skip(why)
    yield check
    check.close()


def test_neutral_images_do_not_fire(nudity: Any) -> None:
    from tests.fixtures.screen_images import negatives

    for name, img in negatives():
        assert nudity.check(img) is None, name


def test_the_synthetic_shape_fires_above_the_threshold(nudity: Any) -> None:
    from tests.fixtures.screen_images import positive_shape

    found = nudity.check(positive_shape())
    assert found is not None and found.label == "FEMALE_BREAST_EXPOSED" and found.score >= 0.6
    # the same shape inside a larger window-sized frame (padding, other content) still fires
    from PIL import Image

    frame = Image.new("RGB", (900, 700), "white")
    frame.paste(positive_shape(), (20, 40))
    assert nudity.check(frame) is not None


def test_the_preprocessing_pads_to_a_square_of_320() -> None:
    from PIL import Image

    from agent.screen.images import preprocess

    x = preprocess(Image.new("RGB", (640, 320), (255, 0, 0)))
    assert x.shape == (1, 3, 320, 320) and x.dtype.name == "float32"
    assert x[0, 0, 0, 0] == 1.0 and x[0, 0, 319, 0] == 0.0  # the lower half is padding


def test_a_reader_without_ocr_still_checks_images() -> None:
    from agent.screen.reader import ScreenImage

    class Fires:
        name = "fake"

        def unavailable(self) -> None:
            return None

        def check(self, image: Any) -> Any:
            return SimpleNamespace(label="FEMALE_BREAST_EXPOSED", score=0.9)

        def close(self) -> None:
            pass

    got: list[Any] = []
    r = ScreenReader(got.append, engine=FakeEngine(), image_check=Fires(),
                     grab=lambda w: chat(("x",)), power=_power(0, None))
    r.engine = None  # as when tesseract is missing (Windows): the image check goes on
    r.window_changed(WIN, 1.0)
    assert r.poll(1.5)
    assert got == [ScreenImage("FEMALE_BREAST_EXPOSED", 0.9, WIN, 1.0)]


def test_the_signed_policy_switches_reading_on_and_off() -> None:
    engine, grabs = FakeEngine(), []
    r = ScreenReader(lambda s: None, enabled=False, engine=engine, images=False,
                     grab=lambda w: grabs.append(1) or chat(GROOMING[:1]))
    r.window_changed(WIN, 0.0)
    assert not r.poll(1.0) and grabs == [] and r.state == "off"  # no policy yet: nothing grabbed
    r.configure(enabled=True, interval_s=30, images=False, on_battery=True)
    r._power = _power(0, None)
    r.window_changed(WIN, 2.0)
    assert r.poll(2.5) and engine.reads == 1 and r.state == "on" and r.note == ""
    assert r.detector.interval_s == 30
    r.configure(enabled=False, interval_s=30, images=False, on_battery=True,
                why_off="screen reading is switched off in the policy")
    r.window_changed(WindowInfo(2, "Notes", "x", (0, 0, 500, 500)), 3.0)
    assert not r.poll(3.5) and engine.reads == 1
    assert r.state == "off" and "policy" in r.note


def test_the_desktop_can_keep_screen_reading_off_but_not_switch_it_on() -> None:
    from dataclasses import replace as _replace

    from agent.settings import Settings
    from core.policy import ScreenSettings

    class _Policy:  # the fields with_policy reads
        capture = type("C", (), {"format": "png", "quality": 70, "scale": 1.0,
                                 "all_monitors": False})()
        flood_window_s, title_cooldown_s = 600, 60
        screen = ScreenSettings(enabled=True, interval_s=12, images=False, on_battery=True)

    on = Settings().with_policy(_Policy())
    assert (on.screen, on.screen_interval_s, on.screen_images, on.screen_on_battery) == \
        (True, 12.0, False, True)
    assert not Settings(screen=False).with_policy(_Policy()).screen
    _Policy.screen = _replace(_Policy.screen, enabled=False)
    assert not Settings(screen=True).with_policy(_Policy()).screen
