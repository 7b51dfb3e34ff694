"""Denied: a refusal by a gate (a plugin hook, a policy), with a code and a message that reach
the client."""

from __future__ import annotations


class Denied(Exception):
    """Raised by a gate hook to refuse; ``code`` and ``message`` reach the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
