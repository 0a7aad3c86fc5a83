"""The systemd unit and the secrets file the deploy guide installs (``deploy/``).

``systemd-analyze verify`` checks the unit as systemd would load it. Without the tool the test is skipped with how
to install it, except when ``COHORTBOT_REQUIRE_SYSTEMD=1`` (CI): then a missing tool fails it, so a broken CI image
cannot pass by skipping.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "cohortbot.service"
ENV_EXAMPLE = ROOT / "deploy" / "cohortbot.env.example"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"


def directives(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values, in order (systemd allows a key more than once: Environment=, SystemCallFilter=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(values: dict[str, list[str]], key: str) -> str:
    assert len(values.get(key, [])) == 1, f"{key}= is set {len(values.get(key, []))} times"
    return values[key][0]


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    reason = "systemd-analyze is not installed (Debian: apt-get install systemd)"
    if os.environ.get("COHORTBOT_REQUIRE_SYSTEMD") == "1":
        pytest.fail(f"COHORTBOT_REQUIRE_SYSTEMD=1 but {reason}")
    pytest.skip(reason)


def test_the_unit_runs_the_bot_as_its_own_user_with_the_config_and_secrets_the_guide_installs() -> None:
    unit = directives(UNIT)
    service = unit["Service"]
    assert one(service, "User") == one(service, "Group") == "cohortbot"
    argv = shlex.split(one(service, "ExecStart"))
    assert argv[0] == "/opt/cohortbot/venv/bin/cohortbot"
    args = build_parser().parse_args(argv[1:])  # the command line the CLI really accepts
    assert args.command == "run"
    assert args.config == "/etc/cohortbot/cohortbot.toml"
    assert one(service, "EnvironmentFile") == "/etc/cohortbot/cohortbot.env"
    assert one(service, "Restart") == "on-failure"
    assert one(service, "RestartPreventExitStatus") == "2"  # a bad config: restarting cannot help
    assert one(unit["Install"], "WantedBy") == "multi-user.target"
    assert "network-online.target" in one(unit["Unit"], "Wants")
    # Every path the unit names is one the deploy guide creates or installs.
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    for path in ("/opt/cohortbot/venv", "/etc/cohortbot/cohortbot.toml", "/etc/cohortbot/cohortbot.env"):
        assert path in guide, path


def test_the_unit_is_hardened_but_keeps_the_network_and_its_database_directory() -> None:
    service = directives(UNIT)["Service"]
    assert one(service, "NoNewPrivileges") == "yes"
    assert one(service, "ProtectSystem") == "strict"  # the whole file system read-only ...
    assert one(service, "StateDirectory") == "cohortbot"  # ... except /var/lib/cohortbot, the database's folder
    assert one(service, "ReadWritePaths") == "/var/lib/cohortbot"
    assert one(service, "ProtectHome") == "yes"
    assert one(service, "PrivateTmp") == "yes"
    assert one(service, "CapabilityBoundingSet") == ""
    families = one(service, "RestrictAddressFamilies").split()
    # Discord, Telegram, PostgreSQL, the journal, and getaddrinfo's look at the configured address families.
    assert {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"} == set(families)
    assert "PrivateNetwork" not in service and "IPAddressDeny" not in service
    # Matplotlib needs a writable cache folder for the digest charts: one systemd creates.
    assert "MPLCONFIGDIR=/var/cache/cohortbot/matplotlib" in service["Environment"]
    assert one(service, "CacheDirectory") == "cohortbot"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = systemd_analyze()
    # verify checks that ExecStart's program exists: point it at this environment's real `cohortbot` script.
    script = Path(sys.executable).parent / "cohortbot"
    assert script.is_file(), f"{script} missing: install cohortbot into this environment (pip install -e .)"
    text = UNIT.read_text(encoding="utf-8").replace("/opt/cohortbot/venv/bin/cohortbot", str(script))
    assert str(script) in text
    copy = tmp_path / "cohortbot.service"
    copy.write_text(text, encoding="utf-8")
    result = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=120, check=False)
    # verify exits 0 on unknown keys and values it ignores, and only warns: any output at all is a finding.
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    tool = systemd_analyze()
    script = Path(sys.executable).parent / "cohortbot"
    text = UNIT.read_text(encoding="utf-8").replace("/opt/cohortbot/venv/bin/cohortbot", str(script))
    copy = tmp_path / "cohortbot.service"
    copy.write_text(text.replace("Restart=on-failure", "Restart=sometimes"), encoding="utf-8")
    result = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=120, check=False)
    assert "restart" in (result.stdout + result.stderr).lower()


def test_the_secrets_example_names_only_variables_cohortbot_reads() -> None:
    readable = set(re.findall(r"COHORTBOT_[A-Z_]+", (ROOT / "config.example.toml").read_text(encoding="utf-8")))
    readable |= {"PGPASSWORD"}  # libpq's, for a PostgreSQL [storage] url
    names = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"(?:# )?([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            names.append(match[1])
            assert match[2] == "", f"{line!r}: the example must not carry a value"
    assert set(names) <= readable, set(names) - readable
    assert {"COHORTBOT_TELEGRAM_TOKEN", "COHORTBOT_DISCORD_TOKEN", "COHORTBOT_SECRET", "PGPASSWORD"} <= set(names)
    assert "COHORTBOT_CONFIG" not in names  # the unit passes --config itself


def test_the_guides_backup_timer_units_verify(tmp_path: Path) -> None:
    tool = systemd_analyze()
    units = [b for b in re.findall(r"```ini\n(.*?)```", DEPLOY_DOC.read_text(encoding="utf-8"), re.S) if "[Unit]" in b]
    service, timer = (next(u for u in units if marker in u) for marker in ("[Service]", "[Timer]"))
    assert "cohortbot db backup --config /etc/cohortbot/cohortbot.toml" in service
    (tmp_path / "cohortbot-backup.service").write_text(service, encoding="utf-8")
    (tmp_path / "cohortbot-backup.timer").write_text(timer, encoding="utf-8")
    result = subprocess.run(
        [tool, "verify", "cohortbot-backup.service", "cohortbot-backup.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_every_cohortbot_command_in_the_guide_is_one_the_cli_accepts() -> None:
    parser = build_parser()
    commands = []
    for block in re.findall(r"```(?:sh|ini)\n(.*?)```", DEPLOY_DOC.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].replace("$(date -u +%F)", "2026-12-01").replace("$(date -u +%%F)", "2026-12-01")
            if "/bin/cohortbot " in line:
                argv = shlex.split(line.split("/bin/cohortbot ", 1)[1].rstrip("'"))
                if argv == ["--version"]:
                    continue
                args = parser.parse_args(argv)  # exits (SystemExit) on anything the CLI does not take
                if getattr(args, "config", None) is not None:
                    assert args.config == "/etc/cohortbot/cohortbot.toml", line
                commands.append(" ".join(a for a in (args.command, getattr(args, "db_command", None)) if a))
    assert {"db backup", "db upgrade", "db verify", "db copy", "run", "check-config"} <= set(commands)
