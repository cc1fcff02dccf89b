"""GAP1xx: swallowed errors — handlers, tasks and retries that let a failure pass unnoticed."""
