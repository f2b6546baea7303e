"""Korean time: Naver's daily quota follows the Korean calendar day."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

#: Korea Standard Time (UTC+9, no daylight saving time).
KST = timezone(timedelta(hours=9))


def korean_today() -> str:
    """Today's date in Korea (``YYYY-MM-DD``), the day Naver's quota counts."""
    return datetime.now(KST).date().isoformat()
