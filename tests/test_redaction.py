"""Tokens never reach the logs: not through ``redact``, nor through any logger once logging is configured."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.redaction import REDACTED, configure_logging, redact
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.helpers.cohortbot_process import environment, run_cli

# Shaped like real tokens (Telegram: "<bot id>:<35 characters>"; Discord: three dot-separated base64 parts).
TELEGRAM_TOKEN = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
DISCORD_TOKEN = "MTEyMjMzNDQ1NTY2Nzc4ODk5.GhK2aB.x1Yz9Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc3Vb"
SIGNING_SECRET = "s3cr3t-signing-value-for-tests"


@pytest.fixture
def restore_logging() -> Iterator[logging.Logger]:
    """Put the root logger's handlers and level back after a test that calls ``configure_logging``."""
    root = logging.getLogger()
    saved_handlers = list(root.handlers)
    saved_level = root.level
    saved_library_levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "alembic")}
    yield root
    for name, level in saved_library_levels.items():
        logging.getLogger(name).setLevel(level)
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in saved_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved_level)


# --- redact() ---


def test_configured_secret_is_removed_wherever_it_appears() -> None:
    text = f"signing with {SIGNING_SECRET}; again:{SIGNING_SECRET}!"
    assert redact(text, [SIGNING_SECRET]) == f"signing with {REDACTED}; again:{REDACTED}!"


def test_several_configured_secrets_are_all_removed() -> None:
    text = f"a={SIGNING_SECRET} b=hunter2-but-longer"
    cleaned = redact(text, [SIGNING_SECRET, "hunter2-but-longer"])
    assert SIGNING_SECRET not in cleaned and "hunter2-but-longer" not in cleaned
    assert cleaned == f"a={REDACTED} b={REDACTED}"


def test_empty_secrets_are_ignored() -> None:
    # An unset secret is "" or None upstream; replacing "" would splice [redacted] between every character.
    assert redact("hello world", ["", ""]) == "hello world"


@pytest.mark.parametrize(
    "template",
    [
        "{}",
        "token={}",
        "token: {}",
        "Authorization: Bot {}",
        '{{"token": "{}"}}',
        "({})",
    ],
)
@pytest.mark.parametrize("token", [TELEGRAM_TOKEN, DISCORD_TOKEN], ids=["telegram", "discord"])
def test_token_shaped_strings_are_removed_without_configuration(template: str, token: str) -> None:
    cleaned = redact(template.format(token))
    assert token not in cleaned
    assert cleaned == template.format(REDACTED)


def test_no_fragment_of_a_telegram_token_survives() -> None:
    cleaned = redact(f"bot id and secret part: {TELEGRAM_TOKEN}")
    secret_part = TELEGRAM_TOKEN.split(":", 1)[1]
    assert secret_part not in cleaned
    assert REDACTED in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Meeting at 10:30:45, room 12",
        "See https://docs.python.org/3/library/logging.html#logging.Filter",
        "ticket 12345:abc is closed",
        "version 3.12.1 on host db.internal.example.com",
        "user 123456789 posted 42 messages",
        "HTTP Request: POST https://discord.com/api/v10/channels/112233445566778899/messages",
        "Ünïcödé and emoji 👋 stay as they are",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text
    assert redact(text, [SIGNING_SECRET]) == text


# --- configure_logging(): what reaches stderr ---


def _logged_stderr(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.err


def test_token_passed_as_a_log_argument_is_redacted(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", [TELEGRAM_TOKEN])
    log = logging.getLogger("httpx")
    log.info(
        'HTTP Request: %s %s "%s"',
        "POST",
        f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/getUpdates",
        "200 OK",
    )
    err = _logged_stderr(capsys)
    assert TELEGRAM_TOKEN not in err
    assert f"HTTP Request: POST https://api.telegram.org/bot{REDACTED}/getUpdates" in err
    assert "httpx" in err and "INFO" in err


def test_request_lines_stay_out_of_the_info_log(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # `cohortbot run` logs at INFO; httpx would add a line per Telegram long poll.
    configure_logging("INFO", [TELEGRAM_TOKEN])
    logging.getLogger("httpx").info("HTTP Request: POST https://api.telegram.org/bot%s/getUpdates", TELEGRAM_TOKEN)
    logging.getLogger("bot.app").info("cohortbot is running")
    err = _logged_stderr(capsys)
    assert "HTTP Request" not in err
    assert "cohortbot is running" in err


def test_the_start_up_schema_check_logs_no_alembic_lines_at_info(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from bot.app import check_schema
    from storage.engine import make_engine
    from storage.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    upgrade(engine)
    capsys.readouterr()
    # `cohortbot run` logs at INFO and checks the schema revision first: Alembic's plugin and context lines are noise.
    configure_logging("INFO")
    check_schema(engine)
    logging.getLogger("bot.app").info("cohortbot is running")
    err = _logged_stderr(capsys)
    assert "alembic" not in err
    assert "cohortbot is running" in err
    # Asked for DEBUG, the operator still gets them.
    configure_logging("DEBUG")
    check_schema(engine)
    engine.dispose()
    assert "alembic.runtime.migration: Context impl SQLiteImpl." in _logged_stderr(capsys)


def test_token_in_an_exception_traceback_is_redacted(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", [TELEGRAM_TOKEN, DISCORD_TOKEN])
    log = logging.getLogger("httpx")
    url = f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/getUpdates"
    try:
        raise ConnectionError(f"POST {url} failed; headers: Authorization: Bot {DISCORD_TOKEN}")
    except ConnectionError:
        log.exception("HTTP Request: POST %s failed", url)
    err = _logged_stderr(capsys)
    assert "Traceback (most recent call last)" in err
    assert "ConnectionError: POST https://api.telegram.org/bot[redacted]/getUpdates failed" in err
    assert TELEGRAM_TOKEN not in err
    assert DISCORD_TOKEN not in err
    assert TELEGRAM_TOKEN.split(":", 1)[1] not in err
    assert err.count(REDACTED) >= 3  # the message, the exception text and the header


def test_json_log_lines_are_one_object_each_redacted_and_without_terminal_control(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # `cohortbot --log-format json run`: what a log shipper reads, line by line.
    configure_logging("INFO", [TELEGRAM_TOKEN, SIGNING_SECRET], log_format="json")
    log = logging.getLogger("bot.adapters.telegram")
    log.info("member %s joined\nand left", "Eve\x1b[2J\u202e")
    try:
        raise ConnectionError(f"POST https://api.telegram.org/bot{TELEGRAM_TOKEN}/getMe failed")
    except ConnectionError:
        log.exception("retrying with %s", SIGNING_SECRET)
    lines = _logged_stderr(capsys).splitlines()
    assert len(lines) == 2  # the message's line break and the traceback stay inside their JSON strings
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "bot.adapters.telegram"
    assert datetime.fromisoformat(first["time"]).utcoffset() == timedelta(0)
    assert first["message"] == "member Eve?[2J? joined\nand left"  # the escape and the bidi override are shown as ?
    assert second["level"] == "ERROR"
    assert second["message"] == f"retrying with {REDACTED}"
    assert "Traceback (most recent call last)" in second["exception"]
    assert f"bot{REDACTED}/getMe" in second["exception"]
    for line in lines:
        assert TELEGRAM_TOKEN not in line and SIGNING_SECRET not in line


async def test_with_json_logs_a_failed_start_is_a_json_line_too(tmp_path: Path) -> None:
    config = tmp_path / "cohortbot.toml"
    config.write_text('[community]\nname = "PyCraft"\n', encoding="utf-8")
    code, output = await run_cli("--log-format", "json", "run", "--config", str(config), secrets={})
    assert code == 2
    (line,) = output.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["message"].startswith("cohortbot: nothing to run: no platform is enabled")


def test_cli_log_format_option_defaults_to_text() -> None:
    from bot.cli import build_parser

    assert build_parser().parse_args(["run"]).log_format == "text"
    assert build_parser().parse_args(["--log-format", "json", "run"]).log_format == "json"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--log-format", "xml", "run"])


def test_each_record_is_redacted_not_just_the_first(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", [SIGNING_SECRET])
    for name in ("telegram.ext.Updater", "discord.http", "cohortbot.app"):
        logging.getLogger(name).warning("retrying with %s", SIGNING_SECRET)
    err = _logged_stderr(capsys)
    assert SIGNING_SECRET not in err
    assert err.count(f"retrying with {REDACTED}") == 3


def test_records_without_secrets_are_logged_unchanged(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", [TELEGRAM_TOKEN])
    logging.getLogger("cohortbot.writer").info("stored %d messages in %.1f s", 17, 0.5)
    err = _logged_stderr(capsys)
    assert "cohortbot.writer: stored 17 messages in 0.5 s" in err
    assert REDACTED not in err


def test_token_shaped_argument_is_redacted_without_configured_secrets(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    logging.getLogger("discord.http").info("login with token %s failed", DISCORD_TOKEN)
    logging.getLogger("telegram.ext").info("token=%s", TELEGRAM_TOKEN)
    err = _logged_stderr(capsys)
    assert DISCORD_TOKEN not in err and TELEGRAM_TOKEN not in err
    assert err.count(REDACTED) == 2


def test_telegram_token_in_bot_api_url_is_redacted_without_configured_secrets(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG")
    logging.getLogger("httpx").info("HTTP Request: POST %s", f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/getUpdates")
    err = _logged_stderr(capsys)
    assert TELEGRAM_TOKEN not in err
    assert f"/bot{REDACTED}/getUpdates" in err


def test_level_is_applied(restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", [TELEGRAM_TOKEN])
    logging.getLogger("httpx").info("HTTP Request: POST %s", "https://example.com")
    logging.getLogger("httpx").warning("rate limited")
    err = _logged_stderr(capsys)
    assert "rate limited" in err
    assert "https://example.com" not in err


def test_configuring_twice_does_not_duplicate_output(
    restore_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", [TELEGRAM_TOKEN])
    configure_logging("INFO", [TELEGRAM_TOKEN])
    logging.getLogger("cohortbot").info("started with %s", TELEGRAM_TOKEN)
    err = _logged_stderr(capsys)
    assert err.count(f"started with {REDACTED}") == 1
    assert TELEGRAM_TOKEN not in err


# --- the whole process: what Python and the libraries print, not only log records ---

# Run through the real ``cohortbot`` entry point with one command swapped for one that misbehaves in every way a
# library can: a warning, an exception in a thread, in an asyncio callback, in a finalizer, then an uncaught one.
MISBEHAVING_COMMAND = r"""
import asyncio, os, sys, threading, warnings
import bot.cli as cli

TOKEN = os.environ["COHORTBOT_TELEGRAM_TOKEN"]
SECRET = os.environ["COHORTBOT_SECRET"]

class Finalized:
    def __del__(self):
        raise ValueError(f"finalizer saw {TOKEN}")

def misbehave(args):
    warnings.warn(f"retrying with {TOKEN}")
    def worker():
        raise RuntimeError(f"thread saw {SECRET}")
    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join()
    async def loop_errors():
        def callback():
            raise ConnectionError(f"callback saw {TOKEN}")
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0.05)
    asyncio.run(loop_errors())
    Finalized()
    raise PermissionError(f"403 Forbidden: proxy refused POST /bot{TOKEN}/getUpdates")

cli.cmd_jobs = misbehave
sys.exit(cli.main(["jobs"]))
"""


@pytest.mark.slow
def test_nothing_python_prints_on_its_own_carries_a_secret(tmp_path: Path) -> None:
    env = environment({"COHORTBOT_TELEGRAM_TOKEN": TELEGRAM_TOKEN, "COHORTBOT_SECRET": SIGNING_SECRET})
    result = subprocess.run(
        [sys.executable, "-c", MISBEHAVING_COMMAND],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    err = result.stderr
    assert result.returncode == 1, err
    # Each misbehaviour was reported, and each with the secret replaced.
    assert f"PermissionError: 403 Forbidden: proxy refused POST /bot{REDACTED}/getUpdates" in err
    assert f"UserWarning: retrying with {REDACTED}" in err
    assert "Exception in thread worker" in err and f"RuntimeError: thread saw {REDACTED}" in err
    assert f"ConnectionError: callback saw {REDACTED}" in err
    assert f"ValueError: finalizer saw {REDACTED}" in err
    assert TELEGRAM_TOKEN not in err and TELEGRAM_TOKEN.split(":", 1)[1] not in err
    assert SIGNING_SECRET not in err
    assert TELEGRAM_TOKEN not in result.stdout


@pytest.mark.slow
async def test_a_proxy_echoing_the_request_path_in_a_403_does_not_put_the_token_on_stderr(tmp_path: Path) -> None:
    async with FakeBotApi(TELEGRAM_TOKEN) as api:
        # An HTTP proxy in front of the Bot API that refuses the bot, quoting the request it refused.
        for method in ("getMe", "deleteWebhook", "getUpdates"):
            api.fail(method, 403, f"Forbidden: proxy policy denies POST /bot{TELEGRAM_TOKEN}/{method}", times=1000)
        config = tmp_path / "bot.toml"
        config.write_text(
            f'[storage]\nurl = "sqlite:///{tmp_path / "bot.db"}"\n\n'
            f'[telegram]\nenabled = true\nchat_ids = [-1001234567890]\napi_base_url = "{api.base_url}"\n',
            encoding="utf-8",
        )
        secrets = {"COHORTBOT_TELEGRAM_TOKEN": TELEGRAM_TOKEN}
        code, output = await run_cli("db", "upgrade", "--config", str(config), secrets=secrets)
        assert code == 0, output
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "--log-level",
            "DEBUG",
            "run",
            "--config",
            str(config),
            env=environment(secrets),
            cwd=str(tmp_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            # The bot either gives up at once or keeps retrying: once refused, give it a moment to report it, then
            # stop it as a service manager would.
            output_task = asyncio.ensure_future(process.communicate())  # read as it goes: a full pipe would block it
            await api.wait_for("getMe", within=30)
            await asyncio.wait({output_task}, timeout=5)
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            out, err_bytes = await asyncio.wait_for(output_task, 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    err = err_bytes.decode(errors="replace") + out.decode(errors="replace")
    assert api.calls, "the bot never called the Bot API"
    assert "Forbidden: proxy policy denies POST /bot" in err  # the refusal is reported ...
    assert f"/bot{REDACTED}/" in err  # ... with the token replaced
    assert TELEGRAM_TOKEN not in err
    assert TELEGRAM_TOKEN.split(":", 1)[1] not in err
