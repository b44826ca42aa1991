"""The bureau's review marks (初选, 评审) kept beside each candidate; no email goes out."""
from __future__ import annotations

import datetime as dt

from pipeline.errors import IntakeError
from pipeline.rules import REVIEW_STATUSES

# What the contact may type for each mark: the code, or the notice's words and their short forms.
REVIEW_ALIASES = {
    "pooled": ("pooled", "入储备库", "储备库", "入库", "初选"),
    "shortlisted": ("shortlisted", "入围备选名单", "备选名单", "入围", "备选"),
    "selected": ("selected", "建议人选", "推荐", "入选"),
    "not-selected": ("not-selected", "未入选", "落选"),
}


def review_status(word: str) -> str:
    """The mark's code for a code or a Chinese word (入库, 入围, 推荐, 未入选, 储备库, …)."""
    word = word.strip()
    for code, aliases in REVIEW_ALIASES.items():
        if word.lower() in aliases:
            return code
    choices = "、".join(a for aliases in REVIEW_ALIASES.values() for a in aliases[1:])
    raise IntakeError(f"review status must be one of {', '.join(REVIEW_STATUSES)} or {choices}, not {word!r}")


def mark_candidate(store, county: str, name: str, status: str, note: str, now: dt.datetime,
                   timezone=None) -> dict:
    """Record a review mark (its time in the campaign's time zone); the candidate's submission
    status is left as it is."""
    status = review_status(status)
    candidate = store.candidates.get(county, name)
    if candidate is None:
        raise IntakeError(f"{county} has no candidate named {name}")
    mark = {"status": status, "note": note,
            "at": (now.astimezone(timezone) if timezone else now).isoformat(timespec="seconds")}
    candidate = {**candidate, "review": mark, "reviews": [*candidate.get("reviews", []), mark]}
    with store.transaction():
        store.candidates.put(candidate)
    return candidate
