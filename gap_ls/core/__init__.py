"""The analysis core: source model, module summary, rule framework, engine, settings.

Pure and synchronous. Must not import pygls or lsprotocol (tests/test_layering.py
checks): the CLI and the language server are thin front ends over it.
"""
