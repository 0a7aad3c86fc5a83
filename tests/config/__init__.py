"""Tests of configuration loading and checking (``bot/config/``)."""
