"""Nudges: who gets one, the budget, quiet hours, the holdout, and whether members came back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update

from analytics.experiments import rate_difference, wilson_interval
from bot.config import Settings, parse_settings
from bot.core.nudges import in_holdout, in_quiet_hours, plan_nudges, run_nudges
from bot.metrics import Metrics
from bot.scheduler import Scheduler
from storage.ingest import IngestStore
from storage.job_runs import last_job_runs
from storage.models import Member, Nudge
from storage.nudge_log import nudge_outcome_counts, record_nudge
from tests.conftest import COMMUNITY, Events
from tests.helpers.platform_double import FakeClock, RecordingPlatform, make_scheduler

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2024, 5, 6, 18, 0, tzinfo=BERLIN).astimezone(UTC)  # Monday 18:00, the default run time
LAST_SEEN = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)  # five weeks before NOW: inactive


def settings(**nudges: object) -> Settings:
    return parse_settings(
        {
            "community": {"name": COMMUNITY, "timezone": "Europe/Berlin"},
            "nudges": {"enabled": True, "holdout_share": 0.2, "max_per_run": 50, **nudges},
        }
    )


def seed_inactive(store: IngestStore, ev: Events, n: int) -> list[str]:
    users = [f"u{i:03d}" for i in range(n)]
    events = [ev.join(u, at=LAST_SEEN - timedelta(days=30)) for u in users]
    events += [ev.message(u, at=LAST_SEEN, channel="help") for u in users]
    events.append(ev.message("regular", at=NOW - timedelta(days=1), channel="help"))  # active: never nudged
    store.write_batch(events)
    return users


def member_id(engine: Engine, user: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(Member.id).where(Member.platform_user_id == user)).scalar_one())


def scheduler(
    engine: Engine, store: IngestStore, cfg: Settings, clock: FakeClock, *platforms: RecordingPlatform
) -> Scheduler:
    return make_scheduler(cfg, engine, store.community_id(COMMUNITY), clock, *platforms)


def test_holdout_is_stable_and_at_the_configured_share() -> None:
    members = range(1, 20_001)
    chosen = [m for m in members if in_holdout(1, m, 0.1)]
    assert 0.09 < len(chosen) / 20_000 < 0.11
    assert chosen == [m for m in members if in_holdout(1, m, 0.1)]  # same members every time
    assert set(chosen) <= {m for m in members if in_holdout(1, m, 0.3)}  # a larger share only adds members
    assert chosen != [m for m in members if in_holdout(2, m, 0.1)]  # independent per community


def test_quiet_hours_wrap_past_midnight() -> None:
    cfg = settings(quiet_hours="22:00-08:00").nudges.quiet_hours
    at = datetime(2024, 1, 1).replace
    assert in_quiet_hours(cfg, at(hour=23).time()) and in_quiet_hours(cfg, at(hour=7, minute=59).time())
    assert not in_quiet_hours(cfg, at(hour=8).time()) and not in_quiet_hours(cfg, at(hour=21, minute=59).time())
    none = settings(quiet_hours="00:00-00:00").nudges.quiet_hours
    assert not in_quiet_hours(none, at(hour=3).time())


@pytest.mark.storage
async def test_a_run_nudges_inactive_members_and_holds_out_the_share(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    users = seed_inactive(store, ev, 40)
    cfg = settings()
    clock = FakeClock(NOW)
    telegram_like = RecordingPlatform("discord")
    result = await scheduler(engine, store, cfg, clock, telegram_like).run("nudges")
    assert result.outcome == "ok", result.detail

    community_id = store.community_id(COMMUNITY)
    expected_holdout = {u for u in users if in_holdout(community_id, member_id(engine, u), 0.2)}
    nudged = {m.target for m in telegram_like.sent}
    assert nudged == set(users) - expected_holdout
    assert all(m.direct and m.platform == "discord" for m in telegram_like.sent)
    with engine.connect() as conn:
        groups = conn.execute(select(Nudge.group, Nudge.sent_at.is_not(None))).all()
    held = [g for g in groups if g[0] == "holdout"]
    assert len(held) == len(expected_holdout) and all(not sent for _, sent in held)
    # The pace: one message per 60 / max_per_minute seconds, never a burst.
    assert clock.slept == [12.0] * (len(nudged) - 1)

    text = telegram_like.sent[0].reply.text.plain()
    assert "/nudges off" in text and COMMUNITY in text
    assert "since 1 April" in text
    assert "#help had" in text  # what happened since they left
    assert telegram_like.sent[0].reply.private
    assert [b.value for b in telegram_like.sent[0].reply.buttons] == ["/nudges off"]


@pytest.mark.storage
async def test_opted_out_recently_nudged_and_unreachable_members_are_skipped(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    users = seed_inactive(store, ev, 6)
    community_id = store.community_id(COMMUNITY)
    cfg = settings(holdout_share=0)
    with engine.begin() as conn:
        conn.execute(update(Member).where(Member.platform_user_id == users[0]).values(nudges_opt_out=True))
    record_nudge(engine, community_id, member_id(engine, users[1]), group="nudged", decided_at=NOW - timedelta(days=10))
    record_nudge(
        engine, community_id, member_id(engine, users[2]), group="holdout", decided_at=NOW - timedelta(days=29)
    )
    record_nudge(engine, community_id, member_id(engine, users[3]), group="nudged", decided_at=NOW - timedelta(days=31))

    platform = RecordingPlatform("discord", blocked={users[4]})
    plan = plan_nudges(engine, cfg, community_id, now=NOW, platforms={"discord"})
    assert plan.skipped == {"opted_out": 1, "cooldown": 2}
    assert {c.user_id for c in plan.planned} == {users[3], users[4], users[5]}

    result = await run_nudges(
        plan,
        engine=engine,
        settings=cfg,
        community_id=community_id,
        send=platform.send,
        now=lambda: NOW,
        sleep=FakeClock(NOW).sleep,
    )
    assert (result.sent, result.unreachable) == (2, 1)
    assert {m.target for m in platform.sent} == {users[3], users[5]}
    # The member whose DMs failed is remembered and skipped from now on (and not retried every day).
    later = plan_nudges(engine, cfg, community_id, now=NOW + timedelta(days=40), platforms={"discord"})
    assert later.skipped.get("unreachable") == 1
    assert users[4] not in {c.user_id for c in later.planned}
    # Members on a platform that is not connected are skipped, not lost.
    # 40 days on, nobody is in cooldown any more and the regular (silent for 41 days) is inactive too: all but the
    # opted-out and the unreachable member (u000, u004) are Discord members skipped for the missing platform.
    elsewhere = plan_nudges(engine, cfg, community_id, now=NOW + timedelta(days=40), platforms={"telegram"})
    assert elsewhere.planned == ()
    assert elsewhere.skipped == {"opted_out": 1, "unreachable": 1, "platform_not_connected": 5}


@pytest.mark.storage
async def test_budget_caps_a_run_and_the_day(engine: Engine, store: IngestStore, ev: Events) -> None:
    seed_inactive(store, ev, 20)
    community_id = store.community_id(COMMUNITY)
    cfg = settings(holdout_share=0, max_per_run=5, max_per_day=7)
    clock = FakeClock(NOW)
    platform = RecordingPlatform("discord")
    sched = scheduler(engine, store, cfg, clock, platform)
    await sched.run("nudges")
    assert len(platform.sent) == 5
    clock.advance(timedelta(minutes=30))
    await sched.run("nudges")
    assert len(platform.sent) == 7  # the daily cap, not another 5
    plan = plan_nudges(engine, cfg, community_id, now=clock.now(), platforms={"discord"})
    assert plan.planned == () and plan.skipped["over_budget"] == 13
    clock.advance(timedelta(days=1))
    await sched.run("nudges")
    assert len(platform.sent) == 12  # a new day, a new budget


@pytest.mark.storage
async def test_metrics_count_nudge_runs_dms_sent_and_dms_held_back_by_the_budget(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    seed_inactive(store, ev, 20)
    clock = FakeClock(NOW)
    platform = RecordingPlatform("discord")
    sched = scheduler(engine, store, settings(holdout_share=0, max_per_run=5, max_per_day=7), clock, platform)
    metrics = Metrics()
    sched.telemetry = metrics
    await sched.run("nudges")
    clock.advance(timedelta(minutes=30))
    await sched.run("nudges")
    # What an operator graphs: 7 DMs went out today, and each run left the rest (15, then 13) for later.
    sample = metrics.registry.get_sample_value
    assert sample("cohortbot_dms_sent_total", {"kind": "nudge"}) == len(platform.sent) == 7
    assert sample("cohortbot_dms_rate_limited_total", {"kind": "nudge"}) == 15 + 13
    assert sample("cohortbot_job_runs_total", {"job": "nudges", "outcome": "ok"}) == 2


@pytest.mark.storage
async def test_quiet_hours_skip_a_run_and_stop_one_that_runs_into_them(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    seed_inactive(store, ev, 5)
    cfg = settings(holdout_share=0, quiet_hours="22:00-08:00", max_per_minute=1)
    platform = RecordingPlatform("discord")
    late = FakeClock(datetime(2024, 5, 6, 23, 0, tzinfo=BERLIN).astimezone(UTC))
    result = await scheduler(engine, store, cfg, late, platform).run("nudges")
    assert result.outcome == "skipped" and platform.sent == []

    # Starting at 21:58 with one message a minute: two go out, then quiet hours begin.
    clock = FakeClock(datetime(2024, 5, 6, 21, 58, tzinfo=BERLIN).astimezone(UTC))
    result = await scheduler(engine, store, cfg, clock, platform).run("nudges")
    assert len(platform.sent) == 2
    assert "quiet hours" in result.detail


@pytest.mark.storage
async def test_outcomes_are_recorded_for_both_groups(engine: Engine, store: IngestStore, ev: Events) -> None:
    users = seed_inactive(store, ev, 4)
    community_id = store.community_id(COMMUNITY)
    ids = {u: member_id(engine, u) for u in users}
    for user, group in zip(users, ["nudged", "nudged", "holdout", "holdout"], strict=True):
        record_nudge(
            engine, community_id, ids[user], group=group, decided_at=NOW, sent_at=NOW if group == "nudged" else None
        )
    # u000 (nudged) is back after 3 days; u002 (holdout) only after 10 days: too late to count.
    store.write_batch(
        [ev.message(users[0], at=NOW + timedelta(days=3)), ev.message(users[2], at=NOW + timedelta(days=10))]
    )
    clock = FakeClock(NOW + timedelta(days=12))
    result = await scheduler(engine, store, settings(), clock).run("refresh")
    assert result.outcome == "ok" and result.detail.startswith("1 ")
    counts = nudge_outcome_counts(
        engine, community_id, decided_between=(NOW - timedelta(days=1), NOW + timedelta(days=1))
    )
    assert (counts.nudged, counts.nudged_reactivated, counts.holdout, counts.holdout_reactivated) == (2, 1, 2, 0)


def test_rate_difference_matches_newcombes_worked_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80 -> 0.2 (0.0524, 0.3339).
    diff = rate_difference(56, 70, 48, 80)
    assert diff.difference == pytest.approx(0.2)
    assert diff.low == pytest.approx(0.0524, abs=1e-4) and diff.high == pytest.approx(0.3339, abs=1e-4)
    assert diff.conclusive
    assert not rate_difference(3, 10, 2, 10).conclusive
    assert rate_difference(1, 5, 0, 0).difference is None
    low, high = wilson_interval(0, 10)
    assert low == 0 and 0.25 < high < 0.35


@pytest.mark.storage
async def test_the_owners_digest_compares_nudged_and_holdout_members(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    from bot.core.digest import build_digest
    from storage.job_runs import finish_job_run, start_job_run

    users = seed_inactive(store, ev, 10)
    community_id = store.community_id(COMMUNITY)
    decided = NOW - timedelta(days=20)
    for i, user in enumerate(users):
        group = "nudged" if i < 6 else "holdout"
        record_nudge(engine, community_id, member_id(engine, user), group=group, decided_at=decided, sent_at=decided)
    # Four of six nudged members came back within the week, one of four held-out members did.
    store.write_batch(
        [ev.message(u, at=decided + timedelta(days=2)) for u in (users[0], users[1], users[2], users[3], users[6])]
    )
    await scheduler(engine, store, settings(), FakeClock(NOW), RecordingPlatform("discord")).run("refresh")
    run = start_job_run(engine, community_id, "reconcile", now=NOW, host="t")
    finish_job_run(
        engine,
        run,
        now=NOW,
        outcome="ok",
        detail="checked 3 accesses, fixed 0, 1 needs an admin\n"
        "needs an admin: discord user 42, Async Python: the bot may not give the role",
    )

    owners = build_digest(engine, settings(), community_id, now=NOW, for_admins=True).text.plain()
    assert "nudged 4 of 6 (67%)" in owners and "not nudged (holdout) 1 of 4 (25%)" in owners
    assert "Difference: +42 points (95% interval" in owners
    assert "Not conclusive yet" in owners  # ten members cannot prove it
    assert "Course access to fix" in owners and "discord user 42, Async Python" in owners
    public = build_digest(engine, settings(), community_id, now=NOW, for_admins=False).text.plain()
    assert "Nudges" not in public and "Course access" not in public


@pytest.mark.storage
async def test_shutting_down_ends_a_nudge_run_after_the_message_in_hand(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    seed_inactive(store, ev, 6)
    cfg = settings(holdout_share=0)
    platform = RecordingPlatform("discord")
    paused = asyncio.Event()
    release = asyncio.Event()

    async def pacing(seconds: float) -> None:  # the 12-second pause between nudges, held until the test says
        paused.set()
        await release.wait()

    sched = scheduler(engine, store, cfg, FakeClock(NOW), platform)
    sched.sleep = pacing
    run = asyncio.create_task(sched.run("nudges"))
    await asyncio.wait_for(paused.wait(), 10)
    stopping = asyncio.create_task(sched.stop())
    await asyncio.sleep(0)
    release.set()
    result = await asyncio.wait_for(run, 10)
    await asyncio.wait_for(stopping, 10)
    assert len(platform.sent) == 1
    assert "stopped early because the bot was shutting down" in result.detail
    runs = last_job_runs(engine, store.community_id(COMMUNITY))
    assert runs["nudges"].outcome == "ok" and runs["nudges"].finished_at is not None
    plan = plan_nudges(engine, cfg, store.community_id(COMMUNITY), now=NOW, platforms={"discord"})
    assert len(plan.planned) == 5  # the others are still eligible
