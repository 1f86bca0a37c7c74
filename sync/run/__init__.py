"""The work: one sync cycle, run bookkeeping, movement sync, backfill. Owns the transactions."""
