"""gap-ls: finds the gaps AI-written Python leaves behind — swallowed errors, races, retried side effects."""

__version__ = "0.1.0"
