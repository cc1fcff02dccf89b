"""GAP3xx: dropped idempotency — retried or redelivered work that repeats a side effect without a key or a dedup record."""
