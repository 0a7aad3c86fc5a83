"""The ``/mydata`` export: everything stored about one member, as a JSON-ready document.

It covers exactly the tables ``storage/deletion.py`` (``/forget``) deletes from or detaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, func, select

from storage.deletion import find_member_id, member_columns, member_data_tables
from storage.models import Base, Member

EXPORT_FORMAT = "cohortbot-mydata-1"


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _rows(conn: Connection, table: Table, where: Any) -> list[dict[str, object]]:
    result = conn.execute(select(table).where(where).order_by(*table.primary_key.columns))
    return [{key: _jsonable(value) for key, value in row._mapping.items()} for row in result]


def export_member_data(
    engine: Engine, community_id: int, platform: str, user_id: str, *, now: datetime
) -> dict[str, object] | None:
    """Everything stored about one member, as a JSON-ready document (``/mydata``).

    The tables are the ones ``storage.deletion`` deletes from or detaches (``member_data_tables``), so the export
    covers exactly what ``/forget`` covers. Per table: ``rows`` are the member's own rows (their messages,
    reactions, membership events, purchases, nudges, daily rollups; refunds of their purchases); other members'
    rows that merely point at them (a reply to their message, a reaction on it, a sale they granted as admin) are
    counted in ``referenced_by_others`` without their content, which belongs to those members.

    Returns:
        The document, or None when nothing is stored about the account.
    """
    with engine.connect() as conn:
        member_id = find_member_id(conn, community_id, platform, user_id)
        if member_id is None:
            return None
        member_row = _rows(conn, Base.metadata.tables[Member.__tablename__], Member.id == member_id)[0]
        exported_ids: dict[str, list[int]] = {}
        tables: dict[str, dict[str, object]] = {}
        for table in member_data_tables():
            refs = member_columns(table)
            section: dict[str, object] = {"policy_on_forget": table.info.get("member_data")}
            if "member_id" in refs:
                rows = _rows(conn, table, table.c["member_id"] == member_id)
            else:
                # No owner column (refunds): the rows that belong to rows already exported (a refund of their
                # purchase). member_data_tables() is ordered so that referenced tables come first.
                rows = []
                for column in table.columns:
                    for fk in column.foreign_keys:
                        parent_ids = exported_ids.get(fk.column.table.name)
                        if parent_ids and fk.column.name == "id":
                            rows += _rows(conn, table, column.in_(parent_ids))
            if "id" in table.c:
                exported_ids[table.name] = [int(r["id"]) for r in rows if isinstance(r["id"], int)]
            section["rows"] = rows
            others: dict[str, int] = {}
            for name in refs:
                if name == "member_id":
                    continue
                where = table.c[name] == member_id
                if "member_id" in table.c:
                    # Their own rows pointing at themselves (a reply to their own message) are already exported.
                    where = and_(where, table.c["member_id"].is_distinct_from(member_id))
                count = conn.execute(select(func.count()).select_from(table).where(where)).scalar()
                others[name] = int(count or 0)
            if others:
                section["referenced_by_others"] = others
            tables[table.name] = section
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "platform": platform,
        "user_id": user_id,
        "member": member_row,
        "tables": tables,
    }


def table_counts(document: Mapping[str, object]) -> dict[str, int]:
    """Rows per table in an export document (for the summary shown with ``/mydata``)."""
    tables = document.get("tables")
    out: dict[str, int] = {}
    if isinstance(tables, Mapping):
        for name, section in tables.items():
            rows = section.get("rows") if isinstance(section, Mapping) else None
            out[str(name)] = len(rows) if isinstance(rows, list) else 0
    return out
