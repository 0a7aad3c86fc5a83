"""Tests of the terminal console (``bot/console/``)."""
