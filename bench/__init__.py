"""Hand-run benchmarks for the feed service (never part of the test suite)."""
