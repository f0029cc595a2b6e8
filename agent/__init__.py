"""The Vigil desktop agent: watches typed text and window titles, seals captures, spools them."""

__all__: list[str] = []
