"""The real ``cohortbot`` entry point in a subprocess, as an operator runs it, with its log collected."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def environment(secrets: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any COHORTBOT_* setting, plus ``secrets``, talking to 127.0.0.1 directly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")}
    env.update(secrets)
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


async def run_cli(*args: str, secrets: Mapping[str, str]) -> tuple[int, str]:
    """Run ``cohortbot ARGS`` to completion; returns the exit status and what it printed (stdout, then stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=REPO,
        env=environment(secrets),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(errors="replace") + err.decode(errors="replace")


class Bot:
    """A running ``cohortbot run`` process and what it wrote to stderr so far."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_log(self, needle: str, *, within: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while needle not in self.log:
            if self.process.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"{needle!r} never logged; the bot said:\n{self.log}")
            await asyncio.sleep(0.05)

    async def terminate(self, *, within: float = 30.0) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status once its log is complete."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), within)
        await self.reader
        return code


@asynccontextmanager
async def running_bot(config: Path, secrets: Mapping[str, str], options: Sequence[str] = ()) -> AsyncIterator[Bot]:
    """``cohortbot --log-level INFO [OPTIONS] run --config CONFIG``, started and running; killed if the test leaves
    early (``options``: more global options, e.g. ``--log-format json``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--log-level",
        "INFO",
        *options,
        "run",
        "--config",
        str(config),
        env=environment(secrets),
        cwd=str(REPO),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    bot = Bot(process)
    try:
        await bot.wait_for_log("cohortbot is running")
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await bot.reader
