"""``python -m bench ingest``: events/s of the bot's writer, against raw sqlite3 on the same rows.

The run:

1. Make sure a prefilled database exists (``--prefill`` stored events, built once through ``IngestStore`` and
   cached in the work folder under a key of every parameter that shapes it), and copy it to a fresh file.
2. Generate ``--events`` events continuing the prefill's timeline, before the clock starts: generating events
   is the adapters' cost, not the writer's.
3. Time ``await writer.put(event)`` for every event followed by ``await writer.stop()``, with the same
   ``EventWriter`` + ``IngestStore`` the bot uses (rows and rollups, one transaction per batch).
4. Time the same raw rows going into a fresh, identically migrated database with plain
   ``sqlite3.executemany`` (see ``bench.baseline`` for exactly what it does and does not do), and check that
   both databases ended up with the same rows.
5. Report events/s, the ratio, peak RSS and bytes on disk per stored event.

With ``--url postgresql://user@host:port`` the same workload runs against that PostgreSQL server instead
(:func:`run_postgres`): in a database the run creates and drops (``bench.postgres``), with the cached prefill
copied in with ``COPY``, and psycopg ``executemany`` as the raw-driver baseline. Its last line reads
``ingest: <N> events/s, <R> of raw psycopg``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import logging
import os
import platform
import resource
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from bench import baseline
from bench.measure import (
    MB,
    checkpoint,
    copy_database,
    current_rss_bytes,
    met,
    peak_rss_bytes,
    positive_int,
    remove_sqlite,
    size_on_disk,
    table_sizes,
)
from bench.workload import (
    COMMUNITY,
    START_MS,
    TIMEZONE,
    WORKLOAD_VERSION,
    GeneratorState,
    Population,
    TrafficGenerator,
)
from storage.engine import make_engine
from storage.events import ActivityEvent
from storage.ingest import BatchResult, IngestStore
from storage.migrate import MIGRATIONS, head_revision, upgrade
from storage.writer import EventWriter

DEFAULT_WORKDIR = Path(__file__).resolve().parent / ".cache"
BATCH = 1000  # events per transaction of the baseline and the prefill (the writer's default max_batch)

TARGET_RATE = 100_000
TARGET_RATIO = 0.5
TARGET_BYTES_PER_EVENT = 120

EVENT_TABLES = ("messages", "reactions", "membership_events")

# Order-independent fingerprints of the event rows, to check that writer and baseline stored the same thing
# (row ids differ between the two files, so rows are compared by content).
_FINGERPRINTS = {
    "messages": "SELECT count(*), sum(channel_id), sum(member_id), sum(created_at), sum(length), "
    "sum(has_code), sum(has_link), sum(is_reply), sum(thread_id), sum(reply_to_member_id), sum(attachments), "
    "sum(length(platform_message_id)) FROM messages WHERE id > ?",
    "reactions": "SELECT count(*), sum(channel_id), sum(member_id), sum(reacted_at), sum(removed_at), "
    "count(removed_at), sum(target_member_id), sum(length(emoji)) FROM reactions WHERE id > ?",
    "membership_events": "SELECT count(*), sum(member_id), sum(occurred_at), sum(channel_id) "
    "FROM membership_events WHERE id > ?",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench ingest``."""
    parser.add_argument(
        "--events",
        type=positive_int,
        default=1_000_000,
        help="events to push (default 1,000,000)",
    )
    parser.add_argument(
        "--prefill",
        type=positive_int,
        default=2_000_000,
        help="events already stored before the run (default 2,000,000)",
    )
    parser.add_argument(
        "--members",
        type=positive_int,
        default=20_000,
        help="accounts in the community (default 20,000)",
    )
    parser.add_argument(
        "--channels",
        type=positive_int,
        default=40,
        help="channels, threads and topics (default 40)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the workload (default 1)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the prefilled database is cached and the run's copies live (default bench/.cache)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's database files for inspection")
    parser.add_argument("--sizes", action="store_true", help="also print bytes per table and index")
    parser.add_argument(
        "--url",
        default=None,
        help="run against this PostgreSQL server instead of SQLite, e.g. postgresql://postgres@127.0.0.1:5432/postgres "
        "(the server: the run creates its own database cohortbot_bench_<pid> there and drops it at the end; the "
        "database named in the URL is only where it connects to create and drop it)",
    )


@dataclass(frozen=True, slots=True)
class Prefill:
    """The cached prefilled database and where its timeline ended."""

    path: Path
    state: GeneratorState
    stored: int
    build_seconds: float
    built_now: bool


def _schema_fingerprint() -> str:
    # The migration scripts' text, not only the head revision: a migration edited in place (before a release)
    # must not reuse a database built with the old schema.
    digest = hashlib.sha256(head_revision().encode())
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        digest.update(script.read_bytes())
    return digest.hexdigest()


def _cache_key(args: argparse.Namespace) -> str:
    shape = {
        "workload": WORKLOAD_VERSION,
        "schema": _schema_fingerprint(),
        "prefill": args.prefill,
        "members": args.members,
        "channels": args.channels,
        "seed": args.seed,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def stored_events(db: Path) -> int:
    """Event rows in a database: messages, reactions (live or removed) and membership events."""
    conn = sqlite3.connect(db)
    try:
        return sum(int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) for table in EVENT_TABLES)
    finally:
        conn.close()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned_files(workdir: Path) -> None:
    # A run killed from outside (a timeout's SIGTERM skips ``finally``) leaves its files behind; their names
    # carry the pid of the process that owns them.
    owned = [(p, p.name.split(".")[1]) for p in workdir.glob("prefill-*.*.partial.db")]
    owned += [(p, p.name.split("-")[1]) for p in workdir.glob("run-*-*.db")]
    for path, pid in owned:
        if pid.isdigit() and not _running(int(pid)):
            remove_sqlite(path)


def ensure_prefill(args: argparse.Namespace, population: Population) -> Prefill:
    """Return the cached prefilled database for these parameters, building it first if needed."""
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_files(workdir)
    key = _cache_key(args)
    db = workdir / f"prefill-{key}.db"
    meta_path = workdir / f"prefill-{key}.json"
    if db.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        state = GeneratorState(int(meta["t_ms"]), {str(k): int(v) for k, v in meta["telegram_next"].items()})
        return Prefill(db, state, int(meta["stored"]), float(meta["build_seconds"]), built_now=False)
    print(f"prefill: building {args.prefill:,} events into {db} (once; later runs reuse it) ...", flush=True)
    # Built under a temporary name and renamed when complete, so an interrupted build is never reused (and two
    # concurrent builds do not write into the same file).
    partial = workdir / f"prefill-{key}.{os.getpid()}.partial.db"
    remove_sqlite(partial)
    started = time.perf_counter()
    try:
        generator, stored = _fill(partial, args, population)
        checkpoint(partial)
        remove_sqlite(db)
        os.replace(partial, db)
    finally:
        remove_sqlite(partial)
    seconds = time.perf_counter() - started
    state = generator.state()
    meta_path.write_text(
        json.dumps(
            {
                "t_ms": state.t_ms,
                "telegram_next": state.telegram_next,
                "stored": stored,
                "build_seconds": seconds,
            },
            indent=1,
        )
    )
    return Prefill(db, state, stored, seconds, built_now=True)


def _fill(path: Path, args: argparse.Namespace, population: Population) -> tuple[TrafficGenerator, int]:
    """Store at least ``args.prefill`` events (phase 0 of the timeline) in a new database at ``path``."""
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        store = IngestStore(engine)
        store.register_community(COMMUNITY, TIMEZONE)
        generator = TrafficGenerator(population, seed=args.seed, phase=0, state=GeneratorState(START_MS, {}))
        stored = 0
        while stored < args.prefill:
            # The store directly, without the queue: faster, and the rows and rollups are the same. Duplicates
            # would store nothing; removals and repeated reactions store no new row, hence the top-up loop.
            batch: list[ActivityEvent] = []
            for event in generator.events(args.prefill - stored, duplicates=False):
                batch.append(event)
                if len(batch) == BATCH:
                    store.write_batch(batch)
                    batch = []
            if batch:
                store.write_batch(batch)
            stored = stored_events(path)
    finally:
        engine.dispose()
    return generator, stored


async def _push(store: IngestStore, events: list[ActivityEvent]) -> tuple[float, BatchResult, str]:
    writer = EventWriter(store)  # the bot's defaults
    await writer.start()
    started = time.perf_counter()
    for event in events:
        await writer.put(event)
    await writer.stop()
    elapsed = time.perf_counter() - started
    if writer.rejected:
        raise RuntimeError(f"the writer refused {writer.rejected} events")
    return elapsed, writer.totals, f"{writer.max_batch}, up to {writer.max_batch_under_load} under load"


def _max_ids(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        found = {t: conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone() for t in EVENT_TABLES}
        return {t: int(row[0]) for t, row in found.items()}
    finally:
        conn.close()


def _fingerprints(db: Path, after: dict[str, int]) -> dict[str, tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        found = {t: conn.execute(sql, (after.get(t, 0),)).fetchone() for t, sql in _FINGERPRINTS.items()}
        return {t: tuple(row) for t, row in found.items()}
    finally:
        conn.close()


def _prefill_and_workload(args: argparse.Namespace, population: Population) -> tuple[Prefill, list[ActivityEvent]]:
    """The cached prefill and the timed workload after it, both printed; the same for SQLite and PostgreSQL."""
    prefill = ensure_prefill(args, population)
    how = "built now in" if prefill.built_now else "cached; its build took"
    print(f"prefill: {prefill.stored:,} stored events in {prefill.path} ({how} {prefill.build_seconds:.1f} s)")

    started = time.perf_counter()
    generator = TrafficGenerator(population, seed=args.seed, phase=1, state=prefill.state)
    events = list(generator.events(args.events))
    c = generator.counts
    print(
        f"workload: {len(events):,} events = {c['messages']:,} messages, {c['reactions']:,} reactions "
        f"(+{c['removals']:,} removals), {c['joins']:,} joins, {c['duplicates']:,} re-delivered duplicates; "
        f"{args.members:,} members, {args.channels} channels, seed {args.seed} "
        f"(generated in {time.perf_counter() - started:.1f} s, not timed)",
        flush=True,
    )
    # The pre-built events are an artefact of the benchmark (the bot never holds a million events). Freezing
    # them keeps the cyclic garbage collector from re-scanning them on every collection during the timed runs.
    gc.collect()
    gc.freeze()
    return prefill, events


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its report; the last line is the one-line summary."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "url", None) is not None:
        return run_postgres(args)
    workdir: Path = args.workdir
    cpu = _cpu_model()
    print(
        f"cohortbot ingest benchmark: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs ({cpu})",
        flush=True,
    )
    population = Population(args.members, args.channels, args.seed)
    prefill, events = _prefill_and_workload(args, population)

    writer_db = workdir / f"run-{os.getpid()}-writer.db"
    baseline_db = workdir / f"run-{os.getpid()}-baseline.db"
    for db in (writer_db, baseline_db):
        remove_sqlite(db)
    try:
        copy_database(prefill.path, writer_db)
        before = _max_ids(writer_db)
        engine = make_engine(f"sqlite:///{writer_db}")
        store = IngestStore(engine)
        store.register_community(COMMUNITY, TIMEZONE)
        rss_before = current_rss_bytes()
        writer_seconds, totals, writer_batch = asyncio.run(_push(store, events))
        rss_peak = peak_rss_bytes()
        engine.dispose()
        writer_rate = len(events) / writer_seconds
        print(
            f"writer:   EventWriter + IngestStore (raw rows + rollups, batches of {writer_batch}): "
            f"{len(events):,} events in {writer_seconds:.2f} s = {writer_rate:,.0f} events/s "
            f"(stored {totals.stored:,}, duplicates {totals.duplicates:,})",
            flush=True,
        )

        checkpoint(writer_db)
        disk = size_on_disk(writer_db)
        total_stored = stored_events(writer_db)
        bytes_per_event = disk / total_stored

        baseline.create_like(baseline_db, writer_db)
        batches = baseline.build_batches(baseline_db, events, BATCH)
        baseline_seconds = baseline.run(baseline_db, batches)
        del batches
        baseline_rate = len(events) / baseline_seconds
        ratio = writer_rate / baseline_rate
        same = _fingerprints(writer_db, before) == _fingerprints(baseline_db, {})
        print(
            f"baseline: sqlite3 executemany, {BATCH} events per commit, same raw rows into a fresh migrated "
            f"schema, ids resolved beforehand, NO rollups: {baseline_seconds:.2f} s = "
            f"{baseline_rate:,.0f} events/s "
            f"({'same rows as the writer' if same else 'ROWS DIFFER FROM THE WRITER'})"
        )
        print(f"ratio: writer / baseline = {ratio:.2f}")
        print(
            f"peak RSS: {rss_peak / MB:,.0f} MB (ru_maxrss after the writer run; "
            f"{rss_before / MB:,.0f} MB were resident before the push, mostly the pre-built events)"
        )
        print(
            f"disk: {disk / MB:,.1f} MB (database + WAL after a checkpoint) / {total_stored:,} stored events "
            f"(prefill + new) = {bytes_per_event:.1f} bytes per stored event"
        )
        if args.sizes:
            for name, size in table_sizes(writer_db):
                if size / total_stored < 0.05:
                    continue  # the empty tables of other features
                print(f"  {name:<52} {size / MB:9.1f} MB  {size / total_stored:6.1f} B/event")
        print(
            f"targets: >= {TARGET_RATE:,} events/s {met(writer_rate >= TARGET_RATE)}; "
            f"ratio >= {TARGET_RATIO} {met(ratio >= TARGET_RATIO)}; "
            f"<= {TARGET_BYTES_PER_EVENT} bytes/event {met(bytes_per_event <= TARGET_BYTES_PER_EVENT)}"
        )
        print(f"ingest: {writer_rate:.0f} events/s, {ratio:.2f} of raw sqlite3")
        return 0 if same else 1
    finally:
        gc.unfreeze()
        if not args.keep:
            for db in (writer_db, baseline_db):
                remove_sqlite(db)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# --- PostgreSQL (``--url postgresql://...``) -----------------------------------------------------------------------

_PG_EPOCH_MS = "(extract(epoch FROM {0}) * 1000)::bigint"
_PG_FINGERPRINTS = {
    "messages": "SELECT count(*), sum(channel_id), sum(member_id), "
    f"sum({_PG_EPOCH_MS.format('created_at')}), sum(length), sum(has_code::int), sum(has_link::int), "
    "sum(is_reply::int), sum(thread_id), sum(reply_to_member_id), sum(attachments), "
    "sum(length(platform_message_id)) FROM messages WHERE id > %s",
    "reactions": "SELECT count(*), sum(channel_id), sum(member_id), "
    f"sum({_PG_EPOCH_MS.format('reacted_at')}), sum({_PG_EPOCH_MS.format('removed_at')}), count(removed_at), "
    "sum(target_member_id), sum(length(emoji)) FROM reactions WHERE id > %s",
    "membership_events": f"SELECT count(*), sum(member_id), sum({_PG_EPOCH_MS.format('occurred_at')}), "
    "sum(channel_id) FROM membership_events WHERE id > %s",
}


def _pg_max_ids(url: str) -> dict[str, int]:
    import psycopg

    from bench.postgres import conninfo

    with psycopg.connect(conninfo(url)) as conn:
        found = {t: conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone() for t in EVENT_TABLES}
    return {t: int(row[0]) if row else 0 for t, row in found.items()}


def _pg_fingerprints(url: str, after: dict[str, int]) -> dict[str, tuple[object, ...]]:
    import psycopg

    from bench.postgres import conninfo

    with psycopg.connect(conninfo(url)) as conn:
        found = {t: conn.execute(sql, (after.get(t, 0),)).fetchone() for t, sql in _PG_FINGERPRINTS.items()}
    return {t: tuple(row) if row else () for t, row in found.items()}


def _pg_stored_events(url: str) -> int:
    import psycopg

    from bench.postgres import conninfo

    total = 0
    with psycopg.connect(conninfo(url)) as conn:
        for table in EVENT_TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            total += int(row[0]) if row else 0
    return total


def _pg_copy_accounts(db_url: str, source: str, target: str) -> tuple[list[tuple[int, str, str]], ...]:
    """Copy communities, members and channels (with their ids) between two schemas; return members and channels."""
    import psycopg

    from bench.postgres import conninfo

    with psycopg.connect(conninfo(db_url)) as conn:
        for table in ("communities", "members", "channels"):
            conn.execute(f'INSERT INTO "{target}".{table} SELECT * FROM "{source}".{table}')
        members = conn.execute(f'SELECT id, platform, platform_user_id FROM "{target}".members').fetchall()
        channels = conn.execute(f'SELECT id, platform, platform_channel_id FROM "{target}".channels').fetchall()
        conn.commit()
    return members, channels


def _cpu_seconds() -> float:
    # User + system time of this process (all threads: the writer's thread included), not the server's.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_postgres(args: argparse.Namespace) -> int:
    """The same workload against a PostgreSQL server, with psycopg ``executemany`` as the raw-driver baseline.

    The prefill is the SQLite run's cached database, copied into a ``writer`` schema of a scratch database with
    ``COPY`` (``bench.postgres``); the baseline goes into a fresh ``baseline`` schema of the same database, with
    the writer's accounts and channels copied over (same ids). The scratch database is dropped at the end.
    """
    from bench import postgres

    url: str = args.url
    if not postgres.is_postgres(url):
        raise SystemExit(f"--url: expected a postgresql://user@host:port URL, got {postgres.shown(url)}")
    import psycopg

    print(
        f"cohortbot ingest benchmark: Python {platform.python_version()}, PostgreSQL {postgres.server_version(url)} "
        f"at {postgres.shown(url)}, psycopg {psycopg.__version__}, {os.cpu_count()} CPUs ({_cpu_model()})",
        flush=True,
    )
    population = Population(args.members, args.channels, args.seed)
    prefill, events = _prefill_and_workload(args, population)
    try:
        with postgres.scratch_database(url) as db:
            started = time.perf_counter()
            writer_url = postgres.create_schema(db, "writer")
            copied = postgres.copy_from_sqlite(prefill.path, writer_url)
            print(
                f"database: {postgres.shown(db)} (created for this run, dropped at its end); prefill copied into "
                f"schema writer with COPY in {time.perf_counter() - started:.1f} s ({sum(copied.values()):,} rows, "
                "then VACUUM ANALYZE and CHECKPOINT; not timed)",
                flush=True,
            )
            before = _pg_max_ids(writer_url)
            engine = make_engine(writer_url)
            store = IngestStore(engine)
            store.register_community(COMMUNITY, TIMEZONE)
            rss_before = current_rss_bytes()
            cpu = _cpu_seconds()
            writer_seconds, totals, writer_batch = asyncio.run(_push(store, events))
            writer_cpu = _cpu_seconds() - cpu
            rss_peak = peak_rss_bytes()
            engine.dispose()
            writer_rate = len(events) / writer_seconds
            print(
                f"writer:   EventWriter + IngestStore (raw rows + rollups, batches of {writer_batch}): "
                f"{len(events):,} events in {writer_seconds:.2f} s = {writer_rate:,.0f} events/s "
                f"(stored {totals.stored:,}, duplicates {totals.duplicates:,}); this process's CPU "
                f"{writer_cpu:.1f} s, the rest waiting on the server",
                flush=True,
            )
            disk = postgres.schema_bytes(db, "writer")
            total_stored = _pg_stored_events(writer_url)

            baseline_url = postgres.create_schema(db, "baseline")
            members, channels = _pg_copy_accounts(db, "writer", "baseline")
            postgres.settle(baseline_url)  # the writer's dirty pages are written back before the baseline starts
            batches = baseline.batches_from_ids(members, channels, events, BATCH, postgres=True)
            cpu = _cpu_seconds()
            baseline_seconds = baseline.run_postgres(postgres.conninfo(baseline_url), batches)
            baseline_cpu = _cpu_seconds() - cpu
            del batches
            baseline_rate = len(events) / baseline_seconds
            ratio = writer_rate / baseline_rate
            same = _pg_fingerprints(writer_url, before) == _pg_fingerprints(baseline_url, {})
            print(
                f"baseline: psycopg executemany (pipeline mode), {BATCH} events per commit, same raw rows into a "
                f"fresh migrated schema, ids resolved beforehand, NO rollups: {baseline_seconds:.2f} s = "
                f"{baseline_rate:,.0f} events/s "
                f"({'same rows as the writer' if same else 'ROWS DIFFER FROM THE WRITER'}); this process's CPU "
                f"{baseline_cpu:.1f} s"
            )
            print(f"ratio: writer / baseline = {ratio:.2f}")
            print(
                f"peak RSS: {rss_peak / MB:,.0f} MB (ru_maxrss after the writer run; "
                f"{rss_before / MB:,.0f} MB were resident before the push, mostly the pre-built events)"
            )
            print(
                f"disk: {disk / MB:,.1f} MB (tables, indexes and TOAST of schema writer) / {total_stored:,} stored "
                f"events (prefill + new) = {disk / total_stored:.1f} bytes per stored event"
            )
            print(f"targets: ratio >= {TARGET_RATIO} {met(ratio >= TARGET_RATIO)}")
            print(f"ingest: {writer_rate:.0f} events/s, {ratio:.2f} of raw psycopg")
            return 0 if same else 1
    finally:
        gc.unfreeze()
