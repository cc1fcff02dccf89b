"""Regressions only a diff can show (reported by `gap-ls review` and, against git HEAD, in the editor)."""
