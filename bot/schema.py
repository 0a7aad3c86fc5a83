"""The schema check every command that opens the database runs first.

Kept apart from ``bot.app`` (which re-exports it) so that a command such as ``cohortbot import`` can check the
schema without importing the whole bot: the app's imports (scheduler, digest, charts) take about a second.
"""

from __future__ import annotations

from sqlalchemy import Engine

from storage.migrate import current_revision, head_revision

__all__ = ["SchemaOutdatedError", "check_schema"]


class SchemaOutdatedError(RuntimeError):
    """The database is not at the schema revision this version of cohortbot needs."""


def check_schema(engine: Engine) -> None:
    """Refuse to run on a database that was never migrated or is behind.

    Raises:
        SchemaOutdatedError: With the command that fixes it.
    """
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no cohortbot schema" if current is None else f"is at schema revision {current}"
        raise SchemaOutdatedError(
            f"the database {engine.url.render_as_string(hide_password=True)} {state}; this version needs "
            f"{head}: run `cohortbot db upgrade --config <your config>` first"
        )
