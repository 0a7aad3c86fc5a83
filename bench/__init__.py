"""Benchmarks for cohortbot, run as ``python -m bench <command>`` from the repository root."""
