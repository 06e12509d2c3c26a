"""Helpers only the tests use; what the benchmarks need too lives in bench/rig.py (re-exported here)."""
