"""The roster as the outside world sees it: the json export and the per-county figures."""
from __future__ import annotations

from dataclasses import dataclass

from parsers.records import FORM_FIELDS
from pipeline.settings import Settings

CANDIDATE_KEYS = ("county", *FORM_FIELDS, "opinions", "photo", "status", "problems", "versions", "report")
SUBMISSION_KEYS = ("message_id", "from", "county", "received_at", "subject", "status", "reason",
                   "problems", "files")


def export_roster(store) -> dict:
    """SPEC §6: {"candidates": [...], "submissions": [...]}, candidates in county then name order."""
    candidates = sorted(store.candidates.all(), key=lambda c: (c["county"], c["name"]))
    submissions = sorted(store.submissions.all(), key=lambda s: s["received_at"])
    return {
        "candidates": [{k: c.get(k) for k in CANDIDATE_KEYS} for c in candidates],
        "submissions": [{k: s.get(k) for k in SUBMISSION_KEYS} for s in submissions],
    }


@dataclass
class CountyRow:
    county: str
    accepted: int = 0
    needs_correction: int = 0
    withdrawn: int = 0
    places_used: int = 0
    places_max: int = 3
    reports: int = 0
    last_submission: str = ""


def county_rows(store, settings: Settings) -> list[CountyRow]:
    """One row per configured county, in the configuration's order."""
    rows = {c.name: CountyRow(c.name, places_max=settings.campaign.candidates_max)
            for c in settings.counties}
    for cand in store.candidates.all():
        row = rows.get(cand["county"])
        if row is None:
            continue
        status = cand["status"]
        row.accepted += status == "accepted"
        row.needs_correction += status == "needs-correction"
        row.withdrawn += status == "withdrawn"
        row.places_used += status != "withdrawn"
        row.reports += cand.get("report") is not None
    for sub in store.submissions.all():
        row = rows.get(sub.get("county") or "")
        if row is not None and sub["status"] != "skipped":
            row.last_submission = max(row.last_submission, sub["received_at"])
    return list(rows.values())
