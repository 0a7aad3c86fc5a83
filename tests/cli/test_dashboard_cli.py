"""``cohortbot dashboard serve|link|revoke`` as an operator runs them."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.cli import main
from storage.engine import make_engine
from storage.migrate import upgrade
from tests.helpers.cohortbot_process import REPO, environment

SECRET = "cli-test-secret-" + "z" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def config(tmp_path: Path, port: int) -> Path:
    database = tmp_path / "dash.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    path = tmp_path / "cohortbot.toml"
    path.write_text(
        f'[community]\nname = "PyCraft"\n\n[storage]\nurl = "sqlite:///{database}"\n\n'
        f"[web]\nport = {port}\n\n[dashboard]\nenabled = true\nrefresh_seconds = 1\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COHORTBOT_SECRET", "COHORTBOT_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_link_prints_a_one_time_url(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COHORTBOT_SECRET", SECRET)
    assert main(["dashboard", "link", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert re.match(r"http://127\.0\.0\.1:\d+/login\?t=[\w-]+\.[\w-]+\n", out)
    assert "once" in out
    assert main(["dashboard", "link", "--config", str(config)]) == 0
    assert capsys.readouterr().out.split("\n")[0] != out.split("\n")[0]  # a new link each time


def test_link_without_a_secret_says_what_to_set(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "link", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "COHORTBOT_SECRET" in err and "not set" in err


def test_revoke_needs_both_platform_and_user(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "revoke", "--config", str(config), "--platform", "telegram"]) == 2
    assert "both --platform and --user" in capsys.readouterr().err


async def test_serve_link_sign_in_and_revoke(config: Path, port: int) -> None:
    env = environment({"COHORTBOT_SECRET": SECRET})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "dashboard", "serve", "--config", str(config),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert f"at http://127.0.0.1:{port}" in first

        link = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "dashboard", "link", "--config", str(config),
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        url = (await asyncio.wait_for(link.communicate(), 30))[0].decode().split("\n")[0]
        token = url.split("t=", 1)[1]
        # unsafe=True: aiohttp keeps cookies of IP-address hosts only when told to (browsers always do).
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            assert (await http.get("/healthz")).status == 200
            assert (await http.get("/")).status == 401
            signed_in = await http.post("/login", data={"t": token}, allow_redirects=False)
            assert signed_in.status == 303
            assert (await http.get("/")).status == 200

            revoke = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "dashboard", "revoke", "--config", str(config),
                cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            said = (await asyncio.wait_for(revoke.communicate(), 30))[0].decode()
            assert said.strip() == "ended 1 dashboard session"
            assert (await http.get("/")).status == 401
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 20)
    assert code == 0


async def test_serve_on_a_taken_port_says_so(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "dashboard", "serve", "--config", str(config), "--port", str(port),
            cwd=REPO, env=environment({}), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err.decode()
    assert "already in use" in err.decode()
