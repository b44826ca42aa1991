"""County emails that need a person (status `needs-person`): listed until the contact has
answered them and an operator marks them done with `intake answered`."""
from __future__ import annotations

import datetime as dt

from pipeline.errors import IntakeError
from pipeline.rules import NEEDS_PERSON
from pipeline.settings import Settings


def open_questions(submissions: list[dict], as_of: dt.datetime | None = None) -> list[dict]:
    """The questions received by `as_of` (None: now) and not answered by then, oldest first."""
    def still_open(s: dict) -> bool:
        if s.get("status") != NEEDS_PERSON:
            return False
        if as_of is None:
            return not s.get("answered_at")
        return (dt.datetime.fromisoformat(s["received_at"]) <= as_of
                and (not s.get("answered_at") or dt.datetime.fromisoformat(s["answered_at"]) > as_of))
    return sorted((s for s in submissions if still_open(s)), key=lambda s: s["received_at"])


def mark_answered(store, settings: Settings, message_id: str, now: dt.datetime, note: str = "") -> dict:
    """Mark one question done; it leaves `intake questions` and the next digests."""
    submission = store.submissions.get(message_id)
    if submission is None or submission.get("status") != NEEDS_PERSON:
        raise IntakeError(f"no question has Message-ID {message_id}; see `intake questions`")
    if submission.get("answered_at"):
        raise IntakeError(f"{message_id} was already marked answered at {submission['answered_at'][:16]}")
    answered_at = now.astimezone(settings.campaign.timezone).isoformat(timespec="seconds")
    with store.transaction():
        store.submissions.update(message_id, answered_at=answered_at, answer_note=note)
    return {**submission, "answered_at": answered_at, "answer_note": note}
