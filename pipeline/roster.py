"""The roster as the outside world sees it: the json export, the per-county figures, and the
roster as it stood at a given moment (what a digest for a past date reports)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from parsers.records import FORM_FIELDS
from pipeline.rules import ACTIVE_STATUSES, missing_seals
from pipeline.settings import Settings

CANDIDATE_KEYS = ("county", *FORM_FIELDS, "opinions", "photo", "source", "seals", "seal_file", "status", "problems", "versions", "report",
                  "reports", "withdrawals", "review")
SUBMISSION_KEYS = ("message_id", "from", "county", "received_at", "subject", "status", "reason",
                   "problems", "files", "words", "answered_at")


def export_roster(store) -> dict:
    """SPEC §6: {"candidates": [...], "submissions": [...]}, candidates in county then name order."""
    # Read, never changed: the stored documents themselves, not copies of 50,000 of them.
    candidates = sorted(store.candidates.all(detached=False), key=lambda c: (c["county"], c["name"]))
    submissions = sorted(store.submissions.all(detached=False), key=lambda s: s["received_at"])
    return {
        "candidates": [{k: c.get(k) for k in CANDIDATE_KEYS} for c in candidates],
        "submissions": [{k: s.get(k) for k in SUBMISSION_KEYS} for s in submissions],
    }


def in_county_order(candidates: list[dict], settings: Settings) -> list[dict]:
    """Counties in the configuration's order (the order the bureau lists them), then by the time
    each candidate first arrived; candidates of counties no longer configured come last."""
    order = {c.name: i for i, c in enumerate(settings.counties)}

    def key(cand: dict):
        versions = cand.get("versions") or [{}]
        return (order.get(cand["county"], len(order)), cand["county"],
                versions[0].get("received_at", ""), cand["name"])
    return sorted(candidates, key=key)


@dataclass
class CountyRow:
    county: str
    accepted: int = 0
    needs_correction: int = 0
    rejected: int = 0
    withdrawn: int = 0
    places_used: int = 0
    places_max: int = 3
    reports: int = 0
    sealed: int = 0            # candidates holding a place whose stamped form (scan) has been seen
    emails: int = 0            # emails answered (not skipped) from this county
    last_submission: str = ""  # ISO time of the latest of them, "" when none

    @property
    def has_candidates(self) -> bool:
        return self.places_used > 0


def rows_for(candidates: list[dict], submissions: list[dict], settings: Settings) -> list[CountyRow]:
    rows = {c.name: CountyRow(c.name, places_max=settings.campaign.candidates_max)
            for c in settings.counties}
    for cand in candidates:
        row = rows.get(cand["county"])
        if row is None:
            continue
        status = cand["status"]
        row.accepted += status == "accepted"
        row.needs_correction += status == "needs-correction"
        row.rejected += status == "rejected"
        row.withdrawn += status == "withdrawn"
        row.places_used += status in ACTIVE_STATUSES
        row.sealed += status in ACTIVE_STATUSES and not missing_seals(cand.get("seals"))
        row.reports += bool(cand.get("report"))
    for sub in submissions:
        row = rows.get(sub.get("county") or "")
        if row is not None and sub["status"] != "skipped":
            row.emails += 1
            row.last_submission = max(row.last_submission, sub["received_at"])
    return list(rows.values())


def roster_as_of(store, moment: dt.datetime | None) -> tuple[list[dict], list[dict]]:
    """(candidates, submissions) as they stood at `moment` (None: now). A candidate changed
    later is taken back to its latest version received by then; one first received later is
    left out, and so are emails received later."""
    candidates, submissions = store.candidates.all(), store.submissions.all()
    if moment is None:
        return candidates, submissions
    then = [c for c in (_candidate_at(c, moment) for c in candidates) if c is not None]
    return then, [s for s in submissions if _at(s["received_at"]) <= moment]


def _candidate_at(cand: dict, moment: dt.datetime) -> dict | None:
    versions = cand.get("versions") or []
    updated = cand.get("updated_at") or (versions[-1]["received_at"] if versions else "")
    report = cand.get("report")
    if report and report.get("received_at") and _at(report["received_at"]) > moment:
        report = None
    if not updated or _at(updated) <= moment:
        return {**cand, "report": report}
    earlier = [v for v in versions if _at(v["received_at"]) <= moment]
    if not earlier:
        return None
    latest = earlier[-1]
    if report and not report.get("received_at"):
        report = None   # it came with a later change: there is no telling it arrived by then
    return {**cand, **(latest.get("fields") or {}), "status": latest["status"],
            "problems": [p["code"] if isinstance(p, dict) else p for p in latest.get("problems", [])],
            "versions": earlier, "report": report, "updated_at": latest["received_at"]}


def latest_problems(cand: dict) -> list[dict | str]:
    """The problems of the candidate's current version as stored (dicts with code, file, field,
    detail), or the bare codes when no version holds them."""
    versions = cand.get("versions") or []
    if versions and versions[-1].get("problems"):
        return list(versions[-1]["problems"])
    return list(cand.get("problems") or [])


def _at(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso)
