"""Parse export files in a second process while this one stores what was parsed before.

An import spends about as much CPU parsing files as storing their events, and storing needs the one database
connection, so the two halves run side by side: a forked child parses the files in import order and hands each
run of whole ``ParsedFile`` results to the parent over a pipe; the parent stores them exactly as it stores files
it parsed itself (same transactions, same summary, same errors). The child never touches the database.

The pipe carries pickles. A frozen dataclass unpickles through a ``__setstate__`` that sets each field from
Python (several microseconds per event, as much as the parse it saves); here every event crosses as its class
and its field values, so the parent rebuilds it by calling the class, in C, running the same validation an
event built by the parser ran.
"""

from __future__ import annotations

import contextlib
import copyreg
import gc
import io
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from multiprocessing.connection import Connection
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from bot.importers import CorruptExportError, ParsedFile
from storage.events import MemberJoined, MemberLeft, MessageEvent

__all__ = ["MIN_PARALLEL_BYTES", "ParserProcess", "can_fork", "worth_a_process"]

MIN_PARALLEL_BYTES = 2 * 1024 * 1024
"""Exports smaller than this are parsed in the importing process: starting a second one (a few tens of
milliseconds) would cost more than the overlap saves."""

CHUNK_EVENTS = 2_000
"""The child sends parsed files in runs of about this many events: fewer, larger pipe messages, while the
parent still gets its first events within milliseconds."""

PIPE_BYTES = 1024 * 1024
"""The pipe's buffer: several runs of parsed files (Linux's default limit for an unprivileged process)."""

AHEAD_CHUNKS = 64
"""How many runs of parsed files the child may have ready while the parent is busy (about 12 MB of pickles)."""

_FILES = "files"
_CORRUPT = "corrupt"
_FAILED = "failed"
_DONE = "done"


def can_fork() -> bool:
    """Whether this platform can start the parser by forking (the child then needs no imports or pickled setup)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return 0.0


def worth_a_process(files: Sequence[Path]) -> bool:
    """Whether parsing ``files`` in a second process pays.

    It does with more than one file (a file is stored in one transaction, so one file cannot overlap with
    itself), at least ``MIN_PARALLEL_BYTES`` in all, ``fork``, and a CPU to spare: a second process costs about
    a fifth more CPU in all (events cross the pipe), which only pays when a core would otherwise sit idle. On a
    machine whose load average already fills all but one CPU, the two processes would just take turns.
    """
    cpus = _cpus()
    if len(files) < 2 or cpus < 2 or not can_fork() or _load() > cpus - 1:
        return False
    total = 0
    for path in files:
        try:
            total += path.stat().st_size
        except OSError:
            return False  # let the ordinary path report the file the way it always has
        if total >= MIN_PARALLEL_BYTES:
            return True
    return False


def _event_reducer(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]] | None:
    """A pickle reducer that rebuilds an event by calling its class with its fields in order, when it can."""
    names = [f.name for f in fields(cls)]
    if not all(f.init and not f.kw_only for f in fields(cls)):
        return None  # the class cannot be called with its fields in order: default pickling
    get = attrgetter(*names)

    def reduce(event: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, get(event)

    return reduce


def _dispatch_table() -> dict[type, Any]:
    table: dict[type, Any] = dict(copyreg.dispatch_table)
    for cls in (MessageEvent, MemberJoined, MemberLeft):
        reducer = _event_reducer(cls)
        if reducer is not None:
            table[cls] = reducer
    return table


def _dumps(obj: object, table: dict[type, Any]) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = table
    pickler.dump(obj)
    return buffer.getvalue()


def _parse_files(files: Sequence[Path], parse: Callable[[Path], ParsedFile], out: Connection) -> None:
    """The child: parse ``files`` in order and send them, then ``_DONE`` (or the error that stopped them)."""
    # Ctrl-C reaches the whole process group; the parent handles it (and ends this process).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()  # as ``paused_gc`` in the parent (which may fork before pausing it): nothing here makes cycles
    table = _dispatch_table()
    # A pipe holds 64 KB: sent from this thread, the parse would stop whenever the parent is busy storing, which
    # is exactly when it should run. A sending thread (blocked in the kernel, not holding the GIL) lets the
    # parse run up to ``AHEAD_CHUNKS`` runs ahead.
    ready: queue.Queue[bytes | None] = queue.Queue(maxsize=AHEAD_CHUNKS)

    def send_all() -> None:
        try:
            while (blob := ready.get()) is not None:
                out.send_bytes(blob)
        except OSError:
            pass  # the parent stopped listening (it failed, or was interrupted): nothing left to do

    sender = threading.Thread(target=send_all, name="send parsed files", daemon=True)
    sender.start()

    def send(message: tuple[str, object]) -> None:
        try:
            blob = _dumps(message, table)
        except Exception:
            # An exception that does not pickle still needs reporting.
            blob = _dumps((_FAILED, RuntimeError(f"parsing failed: {message[1]!r}")), table)
        while sender.is_alive():
            try:
                ready.put(blob, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _ParentGone

    run: list[ParsedFile] = []
    events = 0
    try:
        try:
            for path in files:
                parsed = parse(path)
                run.append(parsed)
                events += len(parsed.events)
                if events >= CHUNK_EVENTS:
                    send((_FILES, run))
                    run = []
                    events = 0
        except CorruptExportError as exc:
            stop: tuple[str, object] = (_CORRUPT, (str(exc.file), exc.line, exc.message))
        except _ParentGone:
            return
        except Exception as exc:
            stop = (_FAILED, exc)
        else:
            stop = (_DONE, None)
        # The files parsed before a failure go first, so the parent sees the failure where a parse in its own
        # process would have raised it.
        if run:
            send((_FILES, run))
        send(stop)
        ready.put(None)
        sender.join()
    except _ParentGone:
        pass
    finally:
        out.close()


class _ParentGone(Exception):
    """The parent closed its end of the pipe."""


def _widen(pipe: Connection) -> None:
    """Give the pipe a buffer of ``PIPE_BYTES`` where the system allows it (Linux), else leave it as it is.

    With the default 64 KB every run of files is written in several pieces, and between two pieces the sending
    thread waits for the GIL the parse holds (up to 5 ms each time) while the parent waits for the data.
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), set_size, PIPE_BYTES)


class ParserProcess:
    """A forked child parsing ``files`` with ``parse``; iterate it for the ``ParsedFile`` results in file order.

    Use it as a context manager: leaving the block (normally, or on an error in the parent) ends the child.
    Iteration raises what parsing raised, where parsing in this process would have raised it: a
    ``CorruptExportError`` after every file before the corrupt one was yielded.
    """

    def __init__(self, files: Sequence[Path], parse: Callable[[Path], ParsedFile]) -> None:
        """Start the child.

        Args:
            files: The files, in import order.
            parse: Parses one file (a ``DiscordExportReader.parse``); it runs in the child, on the child's copy of
                the reader, so reader state carries from file to file as usual.
        """
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        _widen(send)
        self._process = context.Process(target=_parse_files, args=(files, parse, send), daemon=True)
        self._process.start()
        send.close()  # the child holds the only sending end: its exit ends the pipe
        self._done = False
        self._closed = False

    def __iter__(self) -> Iterator[ParsedFile]:
        while True:
            try:
                data = self._receive.recv_bytes()
            except EOFError:
                self._process.join()
                raise RuntimeError(
                    f"the import's parsing process ended unexpectedly (exit code {self._process.exitcode})"
                ) from None
            kind, payload = pickle.loads(data)
            if kind == _FILES:
                yield from payload
            elif kind == _DONE:
                self._done = True
                return
            elif kind == _CORRUPT:
                file, line, message = payload
                raise CorruptExportError(file, line, message)
            else:
                raise payload

    def __enter__(self) -> ParserProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the child if it still runs, and wait for it (again: nothing more)."""
        if self._closed:
            return
        self._closed = True
        self._receive.close()
        if not self._done and self._process.is_alive():
            self._process.kill()  # the parent gave up (an error, Ctrl-C): the rest of the parse is not wanted
        self._process.join()
        self._process.close()
