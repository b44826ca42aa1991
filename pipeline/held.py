"""Messages held because their sender's authentication failed, and their release."""
from __future__ import annotations

import datetime as dt

from pipeline.errors import IntakeError
from pipeline.process import process_message
from pipeline.settings import Settings


def release_held(store, settings: Settings, message_id: str, now: dt.datetime) -> dict:
    """Process a held message as if its sender had passed authentication: the contact has
    confirmed with the county that it is theirs. Returns the new submission."""
    held = store.submissions.get(message_id)
    if held is None or held["status"] != "held":
        raise IntakeError(f"no held message has the Message-ID {message_id}")
    raw = store.files.read(held["raw_sha256"])
    received_at = dt.datetime.fromisoformat(held["received_at"])
    with store.transaction():
        store.submissions.remove(message_id)
        submission = process_message(raw, received_at, store, settings, now, held.get("origin"),
                                     trust_sender=True)
    return submission
