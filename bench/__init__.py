"""Benchmarks and load scripts (not run by the test suite). A package so gunicorn, started from
the repository root, can serve `bench.benchping:application`."""
