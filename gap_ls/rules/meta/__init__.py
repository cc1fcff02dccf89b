"""GAP0xx: findings about the analysis itself (the file does not parse, a suppression does nothing)."""
