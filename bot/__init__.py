"""cohortbot: logs, analyses and grows a paid programmer community on Discord and Telegram."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cohortbot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
