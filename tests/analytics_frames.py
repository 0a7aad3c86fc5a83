"""Hand-built analytics input frames, shared by the analytics tests (their expectations are computed by hand)."""

from __future__ import annotations

import pandas as pd

from analytics.frames import MEMBER_DAYS_COLUMNS, MEMBERS_COLUMNS, empty_frame


def member_days(*rows: tuple[int, str, int, int, int, int]) -> pd.DataFrame:
    """Rows of (member_id, day, messages, replies, reactions_given, reactions_received)."""
    if not rows:
        return empty_frame(MEMBER_DAYS_COLUMNS)
    frame = pd.DataFrame(list(rows), columns=list(MEMBER_DAYS_COLUMNS))
    frame["day"] = pd.to_datetime(frame["day"]).astype("datetime64[ns]")
    return frame


def members(*rows: tuple[int, str | None, str | None]) -> pd.DataFrame:
    """Rows of (member_id, joined_at UTC, left_at UTC)."""
    if not rows:
        return empty_frame(MEMBERS_COLUMNS)
    return pd.DataFrame(
        {
            "member_id": [r[0] for r in rows],
            "name": [f"member-{r[0]}" for r in rows],
            "platform": "discord",
            "joined_at": pd.to_datetime([r[1] for r in rows], utc=True),
            "left_at": pd.to_datetime([r[2] for r in rows], utc=True),
            "first_active_at": pd.NaT,
            "last_active_at": pd.NaT,
            "leaderboard_opt_out": False,
        }
    )
