"""Tests of the ``cohortbot`` command line (``bot/cli/``)."""
