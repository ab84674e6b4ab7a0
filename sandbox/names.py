"""The sandbox's cast: people, targetologists and their UTM rules, campaigns and their ads."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
FIRST = ("Айгерим", "Нурлан", "Dana", "Ерлан", "Madina", "Тимур", "Aruzhan", "Олжас", "Zarina")
LAST = ("Ахметова", "Sultanov", "Ким", "Ospanova", "Иванов", "Bekova", "Жумабаев")
HOSTILE = (
    'O\'Brien "the" \\ Tab\there',
    "Line one\nline two\r\nthree",
    "Emoji 👩‍💻🚀 and 中文",
    "Robert'); DROP TABLE landing_leads;--",
    "comma, semicolon; pipe | backslash-n \\n literal",
    "x" * 10_000,
)
OTHER_PIPELINES = (7_001_900, 7_001_901)  # pipelines a misconfigured webhook writes instead

TARGETOLOGISTS: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Aida"},
    {"id": 2, "name": "Bekzat"},
    {"id": 3, "name": "Dana"},
    {"id": 4, "name": "Erlan"},
)
# The old targetologist-mapper's rules: lowest priority number wins; no match → unattributed.
UTM_RULES: tuple[dict[str, Any], ...] = (
    {"id": 1, "targetologist_id": 1, "utm_field": "utm_campaign", "match_type": "prefix",
     "pattern": "aida_", "priority": 10},
    {"id": 2, "targetologist_id": 2, "utm_field": "utm_campaign", "match_type": "prefix",
     "pattern": "bek_", "priority": 10},
    {"id": 3, "targetologist_id": 3, "utm_field": "utm_campaign", "match_type": "prefix",
     "pattern": "dana_", "priority": 10},
    {"id": 4, "targetologist_id": 4, "utm_field": "utm_source", "match_type": "exact",
     "pattern": "ig_erlan", "priority": 5},
    {"id": 5, "targetologist_id": 4, "utm_field": "utm_campaign", "match_type": "contains",
     "pattern": "_erl_", "priority": 20},
)  # fmt: skip
UNATTRIBUTED = "unattributed"


@dataclass(frozen=True)
class Campaign:
    account_id: str
    campaign_id: int
    name: str
    source: str
    ad_ids: tuple[int, ...]


# (account id, currency, time zone): accounts differ in both, as the real ones do
AD_ACCOUNTS = (
    ("act_101", "USD", "Asia/Almaty"),
    ("act_102", "KZT", "Asia/Almaty"),
    ("act_103", "USD", "Europe/Moscow"),
)
CAMPAIGN_PATTERNS = (
    ("aida_express_lal_{n}", "facebook"),
    ("aida_flagship_int_{n}", "facebook"),
    ("bek_express_retarget_{n}", "facebook"),
    ("dana_flagship_video_{n}", "instagram"),
    ("promo_erl_{n}", "facebook"),
    ("stories_erl_{n}", "ig_erlan"),
    ("brand_test_{n}", "facebook"),  # matches no rule: unattributed
)


def campaigns(rng: random.Random, scale: float) -> list[Campaign]:
    ads_per_campaign = max(2, round(4 * scale))
    result = []
    for i, (pattern, source) in enumerate(CAMPAIGN_PATTERNS):
        account_id = AD_ACCOUNTS[i % len(AD_ACCOUNTS)][0]
        campaign_id = 23_850_000_000 + i + 1
        ads = tuple(campaign_id * 100 + k for k in range(1, ads_per_campaign + 1))
        result.append(Campaign(account_id, campaign_id, pattern.format(n=i + 1), source, ads))
    rng.shuffle(result)
    return result


def person(rng: random.Random, hostile: bool) -> dict[str, str]:
    name = rng.choice(HOSTILE) if hostile else f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    number = rng.randrange(10**9)
    return {
        "name": name,
        "phone": f"+77{number:09d}",
        "email": f"user{number}@example.kz",
    }


def attribute(utm: dict[str, str | None]) -> str:
    """The mapping the old system applied; the warehouse's SQL must agree with it exactly."""
    names = {t["id"]: t["name"] for t in TARGETOLOGISTS}
    for rule in sorted(UTM_RULES, key=lambda r: (r["priority"], r["id"])):
        value = utm.get(str(rule["utm_field"]))
        if value is None:
            continue
        pattern = str(rule["pattern"])
        matched = {
            "exact": value == pattern,
            "prefix": value.startswith(pattern),
            "contains": pattern in value,
        }[str(rule["match_type"])]
        if matched:
            return names[int(rule["targetologist_id"])]
    return UNATTRIBUTED
