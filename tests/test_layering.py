"""The layering of the packages, read from the source: which package may import which.

- ``discord`` and ``telegram`` are imported only inside their adapter package (``bot/adapters/<platform>/``);
- ``analytics`` imports neither ``bot`` nor ``storage`` (it computes on frames it is handed);
- ``storage`` imports nothing from ``bot`` (the events it accepts live in ``storage/events.py``);
- ``bot/core`` imports nothing from ``bot.adapters`` (the ports are in ``bot/core/ports.py``);
- the importers import nothing from ``bot`` outside ``bot.importers``; ``bench`` only ``bot.reporting`` (it
  benchmarks the bot's report), ``bot.web`` with ``bot.config`` (it serves the dashboard as the bot does), the
  dispatcher with the command set (it answers commands as the bot does) and ``bot.importers`` (it times an export
  import).

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "storage", "analytics", "bench")


@dataclass(frozen=True, slots=True)
class Rule:
    """Files under ``under`` must not import a module starting with one of ``forbidden`` (unless ``allowed``)."""

    name: str
    under: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: str | None = None  # a folder under ``under`` the rule does not apply to


RULES = (
    Rule("discord only in its adapter", "", ("discord",), exempt="bot/adapters/discord"),
    Rule("telegram only in its adapter", "", ("telegram",), exempt="bot/adapters/telegram"),
    Rule("analytics imports neither bot nor storage", "analytics", ("bot", "storage")),
    Rule("storage imports no bot", "storage", ("bot",)),
    Rule("core imports no adapter", "bot/core", ("bot.adapters",)),
    Rule("importers import nothing else from bot", "bot/importers", ("bot",), allowed=("bot.importers",)),
    Rule(
        "bench imports only the bot's report",
        "bench",
        ("bot",),
        allowed=("bot.reporting", "bot.web", "bot.config", "bot.core.dispatcher", "bot.core.commands", "bot.importers"),
    ),
)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from bot import adapters`` imports bot.adapters; ``from bot.reporting import build`` a name of
            # bot.reporting: ``module.name`` covers both.
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(root: Path, rule: Rule) -> list[str]:
    """Every import under ``root`` that breaks ``rule``, as ``path:line imports module``."""
    found: list[str] = []
    folders = [root / rule.under] if rule.under else [root / p for p in PACKAGES]
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if rule.exempt and (relative + "/").startswith(rule.exempt + "/"):
                continue
            for line, module in imported_modules(path, root):
                if _matches(module, rule.forbidden) and not _matches(module, rule.allowed):
                    found.append(f"{relative}:{line} imports {module}")
    return sorted(set(found))


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_the_source_tree_keeps_the_layering(rule: Rule) -> None:
    assert violations(ROOT, rule) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def _rule(name: str) -> Rule:
    return next(r for r in RULES if r.name == name)


def test_a_storage_module_importing_bot_is_caught_even_lazily_and_relative(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "storage/__init__.py": "",
            "storage/good.py": "from storage.events import Platform\n",
            "storage/lazy.py": "def f():\n    from bot.core import sales\n",
            "bot/__init__.py": "",
            "bot/core/__init__.py": "",
            "bot/core/x.py": "from ..adapters import retry\n",
        },
    )
    assert violations(root, _rule("storage imports no bot")) == ["storage/lazy.py:2 imports bot.core.sales"]
    assert violations(root, _rule("core imports no adapter")) == ["bot/core/x.py:1 imports bot.adapters.retry"]


def test_a_platform_library_outside_its_adapter_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "bot/adapters/telegram/adapter.py": "import telegram\n",
            "bot/adapters/discord/adapter.py": "import discord\nfrom telegram import Bot\n",
            "bot/core/sales.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import discord.ext\n",
            "analytics/report.py": "import storage.models\n",
        },
    )
    assert violations(root, _rule("telegram only in its adapter")) == [
        "bot/adapters/discord/adapter.py:2 imports telegram.Bot"
    ]
    assert violations(root, _rule("discord only in its adapter")) == ["bot/core/sales.py:3 imports discord.ext"]
    assert violations(root, _rule("analytics imports neither bot nor storage")) == [
        "analytics/report.py:1 imports storage.models"
    ]


def test_allowed_imports_pass_and_others_from_the_same_package_do_not(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "bench/analytics.py": "from bot.reporting import build_community_report\n",
            "bench/ingest.py": "from bot.core.sales import record_sale\n",
        },
    )
    assert violations(root, _rule("bench imports only the bot's report")) == [
        "bench/ingest.py:1 imports bot.core.sales.record_sale"
    ]
