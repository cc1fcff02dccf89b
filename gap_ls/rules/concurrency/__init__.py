"""GAP2xx: missing concurrency handling — shared state, rows, keys and files changed without a lock or an atomic operation."""
