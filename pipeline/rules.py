"""The campaign's rules for one form: pure functions of a record, the settings and a time.

No clock and no disk here: the pipeline passes in what the rules need.
"""
from __future__ import annotations

import re

from parsers import normalize
from parsers.records import FormRecord, Problem
from pipeline.settings import CampaignSettings

# Every field of SPEC §2 is required except honours.
REQUIRED_FIELDS = ("name", "sex", "birth", "ethnicity", "native_place", "political_status",
                   "employer_post", "home_address", "phone", "deeds")
REQUIRED_OPINIONS = ("recommender", "discipline")

# Problems editing cannot fix: the email is rejected rather than sent back for correction.
REJECTING_CODES = {"late", "unknown-sender"}

_BIRTH = re.compile(r"^(\d{4})-(\d{2})$")


def validate_form(form: FormRecord, file: str, campaign: CampaignSettings,
                  photo_in_email: bool = False) -> list[Problem]:
    """Every field problem of one form, in the form's order."""
    problems = [Problem(f"missing-field:{name}", file, name)
                for name in REQUIRED_FIELDS if not getattr(form, name).strip()]
    problems += _invalid_values(form, file, campaign)
    deeds_chars = normalize.count_chars(form.deeds)
    if deeds_chars > campaign.deeds_max_chars:
        problems.append(Problem("deeds-too-long", file, "deeds",
                                {"count": deeds_chars, "limit": campaign.deeds_max_chars}))
    problems += [Problem(f"missing-opinion:{key}", file, key)
                 for key in REQUIRED_OPINIONS if not form.opinions.get(key, "").strip()]
    if not (form.photo or photo_in_email):
        problems.append(Problem("missing-photo", file, "photo"))
    return problems


def _invalid_values(form: FormRecord, file: str, campaign: CampaignSettings) -> list[Problem]:
    problems = []

    def invalid(name: str, **detail) -> None:
        problems.append(Problem(f"invalid-field:{name}", file, name,
                                {"value": getattr(form, name), **detail}))

    if form.sex and form.sex not in ("男", "女"):
        invalid("sex")
    if form.birth:
        age = age_at(form.birth, campaign.submission_deadline)
        if age is None:
            invalid("birth")
        elif not campaign.min_age <= age <= campaign.max_age:
            invalid("birth", age=age, min_age=campaign.min_age, max_age=campaign.max_age,
                    deadline=campaign.submission_deadline.isoformat())
    if form.ethnicity and form.ethnicity not in normalize.ETHNICITIES:
        invalid("ethnicity")
    if form.political_status and form.political_status not in normalize.POLITICAL_STATUSES:
        invalid("political_status")
    if form.phone and not normalize.is_valid_phone(form.phone):
        invalid("phone")
    return problems


def age_at(birth: str, day) -> int | None:
    """Whole years between a YYYY-MM birth month and a date; None when birth is not YYYY-MM."""
    match = _BIRTH.match(birth)
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return day.year - year - (1 if day.month < month else 0)


def status_for(problems: list[Problem]) -> str:
    """accepted, needs-correction or rejected (SPEC §4)."""
    codes = {p.code for p in problems}
    if codes & REJECTING_CODES:
        return "rejected"
    return "needs-correction" if codes else "accepted"


_SEVERITY = {"accepted": 0, "withdrawn": 0, "needs-correction": 1, "rejected": 2}


def worst_status(statuses: list[str]) -> str:
    return max(statuses, key=_SEVERITY.__getitem__) if statuses else "accepted"
