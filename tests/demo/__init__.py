"""Tests of the demo and its simulated community (``bot/demo/``)."""
