"""``python -m bench import``: messages/s of ``cohortbot import discord-export`` on a big DiscordChatExporter JSON.

The run:

1. Make sure a generated export exists: one channel's DiscordChatExporter JSON with ``--messages`` messages
   (DCE's own shape and indentation: guild, channel, messages with author objects, attachments, reactions,
   replies with ``reference``, member joins and bot posts), cached in the work folder under a key of every
   parameter that shapes it. Generating it is not timed.
2. Parse only: time ``DiscordExportReader.parse`` on the file (what reading and checking the export costs).
3. Store only: time the parsed events going into a fresh, migrated SQLite database through
   ``IngestStore.write_batch`` in the importer's batches (what storing costs).
4. End to end: time ``import_discord_export`` (what ``cohortbot import discord-export FILE`` runs after start-up)
   into another fresh database, and check that it stored every message the parse found.

The last line is ``import: <N> messages/s`` of step 4.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import time
from pathlib import Path

from bench.measure import MB, met, peak_rss_bytes, positive_int, remove_sqlite
from bot.importers import paused_gc
from bot.importers.discord_export import DiscordExportReader
from bot.importers.runner import BATCH_EVENTS, import_discord_export
from storage.engine import make_engine
from storage.ingest import BatchResult, IngestStore
from storage.migrate import upgrade

DEFAULT_WORKDIR = Path(__file__).resolve().parent / ".cache"
COMMUNITY = "bench-import"
TARGET_RATE = 100_000
GENERATOR_VERSION = 2  # bump when the generated file's content changes

START_MS = 1_609_459_200_000  # 2021-01-01T00:00:00Z
DISCORD_EPOCH_MS = 1_420_070_400_000

_MESSAGE = """    {{
      "id": "{id}",
      "type": "{type}",
      "timestamp": "{timestamp}",
      "timestampEdited": null,
      "callEndedTimestamp": null,
      "isPinned": false,
      "content": {content},
      "author": {{
        "id": "{author}",
        "name": "member{n}",
        "discriminator": "0000",
        "nickname": "Member {n}",
        "color": null,
        "isBot": {bot},
        "roles": [],
        "avatarUrl": "https://cdn.discordapp.com/embed/avatars/0.png"
      }},
      "attachments": [{attachments}],
      "embeds": [],
      "stickers": [],
      "reactions": [{reactions}],
      "mentions": [],
      "inlineEmojis": []{reference}
    }}"""

_ATTACHMENT = """
        {{
          "id": "{id}",
          "url": "https://cdn.discordapp.com/attachments/1/{id}/image.png",
          "fileName": "image.png",
          "fileSizeBytes": 48213
        }}
      """

_REACTION = """
        {
          "emoji": {
            "id": "",
            "name": "\U0001f44d",
            "code": "thumbsup",
            "isAnimated": false,
            "imageUrl": "https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg/1f44d.svg"
          },
          "count": %d,
          "users": []
        }
      """

_CONTENTS = (
    "hi all",
    "How do I run `pytest -k` on one file?",
    "See https://docs.python.org/3/library/asyncio.html for the details",
    "```python\nprint('hello')\n```",
    "thanks, that worked!",
    "Has anyone tried the new release? The migration guide is long but the changes look good to me.",
    "",
    "ok",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench import``."""
    parser.add_argument(
        "--messages", type=positive_int, default=2_000_000, help="messages in the export (default 2,000,000)"
    )
    parser.add_argument(
        "--members", type=positive_int, default=20_000, help="distinct authors in the export (default 20,000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated export (default 1)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the generated export is cached and the run's databases live (default bench/.cache)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's database files for inspection")


def _snowflake(millis: int, n: int) -> int:
    return ((millis - DISCORD_EPOCH_MS) << 22) | (n & 0x3FFFFF)


def _timestamp(millis: int) -> str:
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}+00:00"


def generate(path: Path, messages: int, members: int, seed: int) -> None:
    """Write a DCE JSON export of one channel with ``messages`` messages (joins included) to ``path``."""
    rng = random.Random(seed)
    channel_id = _snowflake(START_MS, 1)
    contents = [json.dumps(c, ensure_ascii=False) for c in _CONTENTS]
    author_ids = [str(_snowflake(START_MS - 86_400_000 * 30, 1000 + i)) for i in range(members)]
    bots = {i for i in range(0, members, 500)}  # a bot account every 500 members
    recent: list[tuple[int, int]] = []  # (message id, author index) of the last messages, for replies
    tmp = path.with_name(path.name + ".part")
    millis = START_MS
    with tmp.open("w", encoding="utf-8") as out:
        guild_id, category_id = _snowflake(START_MS, 0), _snowflake(START_MS, 2)
        out.write(
            "{\n"
            f'  "guild": {{\n    "id": "{guild_id}",\n    "name": "Bench Guild",\n'
            '    "iconUrl": "https://cdn.discordapp.com/embed/avatars/0.png"\n  },\n'
            f'  "channel": {{\n    "id": "{channel_id}",\n    "type": "GuildTextChat",\n'
            f'    "categoryId": "{category_id}",\n'
            '    "category": "Text Channels",\n    "name": "general",\n    "topic": null\n  },\n'
            '  "dateRange": {\n    "after": null,\n    "before": null\n  },\n'
            '  "exportedAt": "2026-01-01T00:00:00.000+00:00",\n'
            '  "messages": [\n'
        )
        chunk: list[str] = []
        for i in range(messages):
            millis += rng.randint(1, 4000)
            message_id = _snowflake(millis, i)
            who = int(members * rng.random() ** 3)  # a few members write most messages, as in real communities
            roll = rng.random()
            kind = "Default"
            reference = ""
            attachments = ""
            reactions = ""
            content = contents[i % len(contents)]
            if roll < 0.01:
                kind, content = "GuildMemberJoin", '"Joined the server."'
            else:
                if roll < 0.2 and recent:
                    target, _ = recent[rng.randrange(len(recent))]
                    kind = "Reply"
                    reference = (
                        f',\n      "reference": {{\n        "messageId": "{target}",\n'
                        f'        "channelId": "{channel_id}",\n        "guildId": null\n      }}'
                    )
                if roll > 0.95:
                    attachments = _ATTACHMENT.format(id=_snowflake(millis, i + 1))
                if roll > 0.85:
                    reactions = _REACTION % rng.randint(1, 5)
                recent.append((message_id, who))
                if len(recent) > 50:
                    del recent[0]
            chunk.append(
                _MESSAGE.format(
                    id=message_id,
                    type=kind,
                    timestamp=_timestamp(millis),
                    content=content,
                    author=author_ids[who],
                    n=who,
                    bot="true" if who in bots else "false",
                    attachments=attachments,
                    reactions=reactions,
                    reference=reference,
                )
            )
            if len(chunk) >= 10_000:
                out.write(",\n".join(chunk))
                out.write(",\n" if i + 1 < messages else "")
                chunk.clear()
        out.write(",\n".join(chunk))
        out.write(f'\n  ],\n  "messageCount": {messages}\n}}\n')
    tmp.replace(path)


def ensure_export(args: argparse.Namespace) -> Path:
    """The generated export for these options, generated once and reused by later runs."""
    key = hashlib.sha256(json.dumps([GENERATOR_VERSION, args.messages, args.members, args.seed]).encode()).hexdigest()[
        :12
    ]
    workdir: Path = args.workdir
    path = workdir / f"import-{args.messages}-{key}.json"
    if path.exists():
        print(f"export: {path} ({path.stat().st_size / MB:,.0f} MB, reused)")
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"export: generating {args.messages:,} messages into {path} (once; later runs reuse it) ...", flush=True)
    started = time.perf_counter()
    generate(path, args.messages, args.members, args.seed)
    print(f"export: {path.stat().st_size / MB:,.0f} MB in {time.perf_counter() - started:.1f} s")
    return path


def _fresh_store(db: Path) -> IngestStore:
    remove_sqlite(db)
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    store = IngestStore(engine)
    store.register_community(COMMUNITY, "UTC")
    return store


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its report; the last line is the one-line summary."""
    path = ensure_export(args)
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at start (CPU seconds are this process's own)")

    # Both steps run as the importer runs them: with the garbage collector paused (see ``paused_gc``).
    gc.collect()
    with paused_gc():
        started, cpu = time.perf_counter(), time.process_time()
        parsed = DiscordExportReader(COMMUNITY).parse(path)
        parse_s, parse_cpu = time.perf_counter() - started, time.process_time() - cpu
    messages = parsed.messages
    print(
        f"parse: {parse_s:.2f} s ({parse_cpu:.2f} s CPU), {messages / parse_s:,.0f} messages/s "
        f"({len(parsed.events):,} events, {path.stat().st_size / MB / parse_s:,.0f} MB/s, "
        f"peak RSS {peak_rss_bytes() / MB:,.0f} MB)"
    )

    store_db = args.workdir / "import-store.db"
    store = _fresh_store(store_db)
    events = parsed.events
    with paused_gc():
        started, cpu = time.perf_counter(), time.process_time()
        stored = BatchResult()
        for start in range(0, len(events), BATCH_EVENTS):
            stored += store.write_batch(events[start : start + BATCH_EVENTS])
        store_s, store_cpu = time.perf_counter() - started, time.process_time() - cpu
    store.engine.dispose()
    print(
        f"store: {store_s:.2f} s ({store_cpu:.2f} s CPU), {messages / store_s:,.0f} messages/s "
        f"({stored.messages:,} messages stored, batches of {BATCH_EVENTS:,})"
    )
    del parsed, events
    gc.collect()

    import_db = args.workdir / "import-run.db"
    store = _fresh_store(import_db)
    started, cpu = time.perf_counter(), time.process_time()
    summary = import_discord_export(store, COMMUNITY, [path])
    total_s, total_cpu = time.perf_counter() - started, time.process_time() - cpu
    store.engine.dispose()
    rate = summary.messages_read / total_s
    same = summary.messages == stored.messages == messages
    print(summary.line())
    print(
        f"end to end: {total_s:.2f} s ({total_cpu:.2f} s CPU, {messages / total_cpu:,.0f} messages per CPU second; "
        f"parsing alone took {parse_s / total_s:.0%} of it, "
        f"storing alone {store_s / total_s:.0%}); {'every message stored' if same else 'STORED COUNTS DIFFER'}; "
        f"target {TARGET_RATE:,}/s {met(rate >= TARGET_RATE)}; peak RSS {peak_rss_bytes() / MB:,.0f} MB"
    )
    if not args.keep:
        remove_sqlite(store_db)
        remove_sqlite(import_db)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"import: {rate:.0f} messages/s")
    return 0 if same else 1
