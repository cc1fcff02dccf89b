"""The language server: a thin pygls adapter over the core (no rule logic here).

``app`` registers every LSP handler; ``session`` holds settings and client
features; ``scheduler`` runs analysis off the event loop and guards versions;
``documents`` keeps open documents; ``convert`` and ``hover`` translate to LSP.
"""
