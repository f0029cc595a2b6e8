"""A small Tk notepad the demo types into, so the screenshots show the typed sentences.

Run as ``python -m vigil._demo.notepad TITLE``; it stays open until the demo stops it.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(title: str) -> None:
    import tkinter as tk

    root = tk.Tk()
    root.title(title)
    root.geometry("900x520+60+60")
    text = tk.Text(root, wrap="word", font=("DejaVu Sans", 16))
    text.pack(fill="both", expand=True)
    text.focus_set()
    root.mainloop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Vigil demo")
