"""The bureau's review marks (初选, 评审) kept beside each candidate; no email goes out."""
from __future__ import annotations

import datetime as dt

from pipeline.errors import IntakeError
from pipeline.rules import REVIEW_STATUSES


def mark_candidate(store, county: str, name: str, status: str, note: str, now: dt.datetime) -> dict:
    """Record a review mark; the candidate's submission status is left as it is."""
    if status not in REVIEW_STATUSES:
        raise IntakeError(f"review status must be one of {', '.join(REVIEW_STATUSES)}, not {status!r}")
    candidate = store.candidates.get(county, name)
    if candidate is None:
        raise IntakeError(f"{county} has no candidate named {name}")
    mark = {"status": status, "note": note, "at": now.isoformat(timespec="seconds")}
    candidate = {**candidate, "review": mark, "reviews": [*candidate.get("reviews", []), mark]}
    with store.transaction():
        store.candidates.put(candidate)
    return candidate
