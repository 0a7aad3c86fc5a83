"""``/healthz``: for a load balancer or a monitor. No login, no data: "ok", or what is not running.

What counts as alive is handed in by whoever runs the server (``bot/app.py`` knows the writer and the scheduler);
standalone, there is nothing in-process to watch, so the answer is "ok" while the database answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiohttp import web
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from bot.web.context import CONTEXT

ProblemCheck = Callable[[], Sequence[str]]
"""Returns one short line per problem ("event writer is not running"); empty when all is well."""

PROBLEMS: web.AppKey[ProblemCheck] = web.AppKey("cohortbot_health_problems", ProblemCheck)  # type: ignore[arg-type]


def _database_answers(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except SQLAlchemyError:
        return False
    return True


async def healthz(request: web.Request) -> web.Response:
    """200 "ok" when the writer (if any) and the scheduler are alive and the database answers, else 503."""
    problems = list(request.app[PROBLEMS]()) if PROBLEMS in request.app else []
    if not problems:
        ctx = request.app[CONTEXT]
        if not await asyncio.to_thread(_database_answers, ctx.engine):
            problems.append("the database does not answer")
    if problems:
        return web.Response(status=503, text="; ".join(problems) + "\n", headers={"Cache-Control": "no-store"})
    return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})


def add_health_routes(app: web.Application, problems: ProblemCheck | None = None) -> None:
    """Install ``/healthz``; ``problems`` (if given) says what is not running."""
    if problems is not None:
        app[PROBLEMS] = problems
    app.router.add_get("/healthz", healthz)
