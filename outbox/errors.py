"""What the outbox's transports raise that the commands turn into one line (imported by the
CLI without the SMTP and SSL machinery of outbox/transports.py)."""
from __future__ import annotations


class TransportUnavailable(Exception):
    """The transport cannot be used at all now (unreachable, login refused); nothing was sent.
    `needs_operator` when waiting will not help (a refused login, a bad certificate);
    `throttled` when the server turned the connection away to slow us down (163's 421 HL:ICC)."""

    def __init__(self, message: str, needs_operator: bool = False, throttled: bool = False):
        super().__init__(message)
        self.needs_operator = needs_operator
        self.throttled = throttled
