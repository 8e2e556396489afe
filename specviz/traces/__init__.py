"""Traces and frames: the records a run writes (JSON Lines, Parquet) and the tidy tables
every view draws from."""
