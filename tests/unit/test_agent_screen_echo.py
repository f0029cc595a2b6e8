"""agent/screen/echo.py: the pupil's own typing, read back from the screen, is not judged again;
what someone else wrote is, even beside it."""

from __future__ import annotations

from agent.screen.echo import TypedEcho

TYPED = "we went to the museum on friday and learnt about the romans and their roads."


def test_typed_lines_read_back_are_echoes_even_with_an_ocr_slip() -> None:
    echo = TypedEcho(window_s=120)
    echo.typed(TYPED, at=0.0)
    assert echo.is_echo("we went to the museum on fridav and learnt about", now=10.0)
    assert echo.is_echo("the romans and their roads.", now=10.0)
    # the half-typed line not yet judged counts too (the live buffer)
    assert echo.is_echo("then we had lunch in the park", live="then we had lunch in the park",
                        now=10.0)


def test_what_someone_else_wrote_is_judged_and_old_typing_expires() -> None:
    echo = TypedEcho(window_s=120)
    echo.typed(TYPED, at=0.0)
    reply = "dont tell your parents about me ok"
    assert not echo.is_echo(reply, now=10.0)
    assert echo.new_lines(f"{TYPED}\n{reply}\nok", now=10.0) == f"{reply}\nok"
    assert not echo.is_echo(TYPED, now=200.0)  # typed more than window_s ago: judged again
    assert not echo.is_echo("the museum", now=10.0)  # too few words to call it an echo
    assert echo.new_lines(TYPED, now=10.0) == ""


def test_only_word_sets_are_kept_and_bounded() -> None:
    echo = TypedEcho()
    for i in range(200):
        echo.typed(f"line number {i} of the notes", at=float(i))
    kept = list(echo._typed)
    assert len(kept) == 64 and all(isinstance(words, frozenset) for _, words in kept)
