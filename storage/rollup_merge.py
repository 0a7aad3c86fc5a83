"""SQL shared by the rollup upserts of every write path (``storage.rollups`` and ``storage.pg_rollups``).

A member's activity span only widens when new activity arrives: the earliest first and the latest last time win,
and the message span starts at the first message (NULL until the member has written one).
"""

from __future__ import annotations

from typing import Final

MEMBER_ACTIVE_SPAN: Final = (
    "first_active_at = CASE WHEN excluded.first_active_at < member_activity.first_active_at "
    "THEN excluded.first_active_at ELSE member_activity.first_active_at END, "
    "last_active_at = CASE WHEN excluded.last_active_at > member_activity.last_active_at "
    "THEN excluded.last_active_at ELSE member_activity.last_active_at END, "
)
"""``ON CONFLICT (member_id) DO UPDATE SET`` terms for ``member_activity``'s first/last activity (ends in ", ")."""

MEMBER_MESSAGE_SPAN: Final = (
    "first_message_at = CASE WHEN member_activity.first_message_at IS NULL "
    "OR excluded.first_message_at < member_activity.first_message_at "
    "THEN excluded.first_message_at ELSE member_activity.first_message_at END, "
    "last_message_at = CASE WHEN member_activity.last_message_at IS NULL "
    "OR excluded.last_message_at > member_activity.last_message_at "
    "THEN excluded.last_message_at ELSE member_activity.last_message_at END"
)
"""The same for its first/last message (no trailing comma)."""
