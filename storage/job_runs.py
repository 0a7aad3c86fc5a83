"""Job runs: when each scheduled job started and finished, and how (shown by ``cohortbot jobs``).

Every write commits before the function returns, so two bot processes sharing one PostgreSQL database see each
other's runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, insert, select, update

from storage.engine import writing
from storage.models import (
    JobRun,
)


@dataclass(frozen=True, slots=True)
class JobRunRecord:
    """One recorded run of a job."""

    id: int
    job: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: str | None
    host: str | None


def start_job_run(engine: Engine, community_id: int, job: str, *, now: datetime, host: str) -> int:
    """Record that ``job`` started; returns the run id for :func:`finish_job_run`."""
    with writing(engine).begin() as conn:
        run_id = conn.execute(
            insert(JobRun)
            .values(community_id=community_id, job=job, started_at=now, outcome="running", host=host)
            .returning(JobRun.id)
        ).scalar_one()
    return int(run_id)


def finish_job_run(engine: Engine, run_id: int, *, now: datetime, outcome: str, detail: str | None = None) -> None:
    """Record how a run ended: ``ok``, ``skipped`` or ``failed`` (``detail`` says what it did or the error)."""
    with writing(engine).begin() as conn:
        conn.execute(
            update(JobRun)
            .where(JobRun.id == run_id)
            .values(finished_at=now, outcome=outcome, detail=None if detail is None else detail[:4000])
        )


def last_job_runs(engine: Engine, community_id: int) -> dict[str, JobRunRecord]:
    """The newest run of each job."""
    newest = (
        select(JobRun.job, func.max(JobRun.id).label("id"))
        .where(JobRun.community_id == community_id)
        .group_by(JobRun.job)
        .subquery()
    )
    query = select(JobRun).join(newest, JobRun.id == newest.c.id).order_by(JobRun.job)
    with engine.connect() as conn:
        return {
            row.job: JobRunRecord(row.id, row.job, row.started_at, row.finished_at, row.outcome, row.detail, row.host)
            for row in conn.execute(query)
        }


def first_job_run_at(engine: Engine, community_id: int) -> datetime | None:
    """When the scheduler first ran for the community (before that, the bot cannot have missed a digest)."""
    with engine.connect() as conn:
        first: datetime | None = conn.execute(
            select(func.min(JobRun.started_at)).where(JobRun.community_id == community_id)
        ).scalar()
    return first
