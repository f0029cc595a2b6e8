"""The no-passwords heuristic: what is typed into sign-in prompts never reaches a context.

A keyboard hook cannot see which field has the focus, so the agent judges from what it can see
(the full reasoning is in docs/agent.md):

1. **Sign-in windows.** A window whose title reads like a sign-in or password prompt, or whose
   application is a known credential prompt (pinentry, polkit agents, password managers, the
   Windows credential UI), is never fed to the typing matcher and its pastes are not read.
2. **The field after a user name.** An utterance that is a single token and looks like a user
   name or e-mail address, ended by Tab or Enter, is followed by a password field on nearly every
   sign-in form. The next utterance in the same window is not fed to the matcher.
3. **Password-shaped text.** A single token of 6 or more characters mixing at least three of
   lower case, upper case, digits and symbols, ended by Enter or Tab, is dropped without being
   matched at its end, and the utterance after it is treated as in 2.

The window title is still matched whole: a title is not a secret, and it is what the pupil saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PasswordGuard", "is_sign_in_window", "looks_like_password", "looks_like_username"]

_TITLE = re.compile(
    r"(?<![a-z])(sign[\s_-]?in|sign[\s_-]?on|log[\s_-]?in|log[\s_-]?on|pass(word|phrase|code)"
    r"|pin\b|authenticat|credential|unlock|two[\s-]?factor|2fa|mfa|verification code"
    r"|one[\s-]?time (code|password)|keyring|sudo|polkit|user account control)",
    re.IGNORECASE,
)
_APPS = frozenset({
    "pinentry", "pinentry-gtk-2", "pinentry-qt", "gcr-prompter", "polkit-gnome-authentication-agent-1",
    "polkit-kde-authentication-agent-1", "lxpolkit", "ssh-askpass", "x11-ssh-askpass", "seahorse",
    "keepassxc", "keepass", "1password", "bitwarden", "kwalletd5", "kwalletd6",
    "consent.exe", "credentialuibroker.exe", "logonui.exe", "keepass.exe", "keepassxc.exe",
    "1password.exe", "bitwarden.exe",
})
_USERNAME = re.compile(r"^(?=.{2,254}$)([^\s@]+@[^\s@]+\.[^\s@]+|[A-Za-z0-9._\\-]*[0-9._\\][A-Za-z0-9._\\-]*)$")


def is_sign_in_window(title: str, app: str) -> bool:
    """True if the window reads like a sign-in, password or unlock prompt."""
    return app.strip().lower() in _APPS or bool(_TITLE.search(title or ""))


def looks_like_username(text: str) -> bool:
    """A single token shaped like an e-mail address or a school log-in (has a digit, '.', '_' or '\\')."""
    return bool(_USERNAME.match(text.strip()))


def looks_like_password(text: str) -> bool:
    token = text.strip()
    if len(token) < 6 or any(c.isspace() for c in token):
        return False
    classes = (
        any(c.islower() for c in token),
        any(c.isupper() for c in token),
        any(c.isdigit() for c in token),
        any(not c.isalnum() for c in token),
    )
    return sum(classes) >= 3


@dataclass
class PasswordGuard:
    """Decides, utterance by utterance, whether typed text may be matched at all."""

    sign_in_window: bool = False
    password_field: bool = False  # the current utterance is (probably) a password field

    @property
    def suppressed(self) -> bool:
        """True: do not feed the current utterance to the matcher, do not read pastes."""
        return self.sign_in_window or self.password_field

    def window_changed(self, title: str, app: str) -> None:
        self.sign_in_window = is_sign_in_window(title, app)
        self.password_field = False

    def utterance_ended(self, text: str, by: str) -> bool:
        """Record how an utterance ended; return False if its end-of-utterance matches must go.

        ``by`` is "enter", "tab", "click" or "focus".
        """
        keep = not self.suppressed
        was_password_field = self.password_field
        token = text.strip()
        self.password_field = False
        if by in ("tab", "enter") and token and not any(c.isspace() for c in token):
            if looks_like_password(token):
                keep = False
                self.password_field = True  # e.g. a confirm-password field follows
            elif looks_like_username(token) and not was_password_field:
                self.password_field = True
        return keep
