"""``python -m bench analytics``: a full analytics refresh of a big community, cross-checked against DuckDB.

The run:

1. Make sure the synthetic community exists (``bench.synthetic``: ``--members`` members, ``--events`` events over
   ``--history-weeks`` weeks, seed ``--seed``): its SQLite database (rollup tables filled, migrated with storage's
   migrations) and its raw event arrays are cached in the work folder under a key of every parameter that shapes
   them; generating them is not timed.
2. In a fresh process, time what ``cohortbot report`` (and the weekly digest) computes: ``build_community_report``
   as of the last generated day over 12 weeks, end to end (SQL reads of the rollups, then pandas/numpy). One
   warm-up, then the best of ``--repeats`` runs. The peak memory reported is that of the report computation alone:
   the process's resident high-water mark (``VmHWM``) is reset just before it and read just after. (``ru_maxrss``
   would not do: Linux carries it over from the parent through the spawn's fork and exec, so a run that had just
   built the cached data set reported that instead.)
3. In another fresh process, load the same raw events into an in-memory DuckDB (load time reported, not
   compared) and time the same metrics computed there with SQL over the raw events: DAU/WAU/MAU per day, weekly
   stats, cohort retention and activation, current members, inactive and at-risk members, segments, top members
   by engagement score, commerce (per course, revenue weeks, conversion, buyer retention, revenue per member by
   join month) and subscriptions (active, MRR, new and churned per week, renewal rate). One warm-up, then
   the best of ``--repeats`` runs.
4. Correctness first: every metric must agree (counts and ids exactly, floats to 1e-9 relative; member lists in
   order, members whose scores tie to 1e-9 in either order). The metrics compared are listed; any disagreement is
   printed with both values and the run exits with status 1.

Both sides get the same data: the rollups are the aggregation of exactly the events DuckDB scans (local days
included, as the bot's ingestion buckets them). The engagement score reads the same history on both sides: the
report's ``LOOKBACK_DAYS`` (analytics.report), whose older days weigh under 0.3 %.

With ``--url postgresql://user@host:port`` the cohortbot side reads from that PostgreSQL server instead: the run
creates a database there, copies the cached community into it with ``COPY`` (untimed, ``bench.postgres``), and drops
it at the end; the DuckDB side and the comparison are unchanged.

The package: :mod:`.ours` (the cohortbot side), :mod:`.reference` (the DuckDB reference), :mod:`.compare` (the
comparison), :mod:`.common` (the range, targets, timing and memory both use) and :mod:`.cli` (options and the run).
"""

from bench.analytics.cli import add_arguments, run

__all__ = ["add_arguments", "run"]
