"""Decoding, line splitting and cutting a module into units."""

from __future__ import annotations

import pytest

from gap_ls.core.source import SourceDecodeError, SourceSyntaxError, decode_source, parse_module, split_lines


def test_split_lines_only_at_python_line_ends():
    text = "a = 1\x0c\nb = '\u2028'\r\nc = 3\rd"
    assert split_lines(text) == ["a = 1\x0c\n", "b = '\u2028'\r\n", "c = 3\r", "d"]


def test_decode_honours_bom_and_cookie():
    assert decode_source(b"\xef\xbb\xbfx = 1\n") == "x = 1\n"
    assert decode_source("# coding: latin-1\nx = 'é'\n".encode("latin-1")).endswith("x = 'é'\n")


def test_decode_error_names_the_line():
    with pytest.raises(SourceDecodeError, match="byte 0xff on line 2"):
        decode_source(b"x = 1\ny = '\xff'\n")


def test_syntax_error_position():
    with pytest.raises(SourceSyntaxError) as info:
        parse_module("x = 1\ndef f(:\n")
    assert info.value.line == 1


def test_units_split_classes_into_members_and_keep_shared_lines_together():
    source = (
        "import os\n"
        "a = 1; b = 2\n"
        "\n"
        "@decorator\n"
        "class Service(Base):\n"
        "    lock = make_lock()\n"
        "\n"
        "    @property\n"
        "    def name(self):\n"
        "        return 'x'\n"
        "\n"
        "    class Inner:\n"
        "        def run(self):\n"
        "            pass\n"
        "class OneLine: pass\n"
    )
    units = parse_module(source).units
    shapes = [(u.start, u.end, u.class_path) for u in units]
    assert shapes == [
        (0, 0, ()),
        (1, 1, ()),
        (5, 5, ("Service",)),
        (7, 9, ("Service",)),
        (12, 13, ("Service", "Inner")),
        (14, 14, ()),
    ]
    method = units[3]
    assert method.text.startswith("    @property")
    assert method.parse_text().startswith("class _:\n    @property")
    assert method.line_offset() == 6


def test_member_with_dedented_multiline_string_parses():
    import libcst as cst

    source = 'class A:\n    def f(self):\n        return """\nleft edge\n"""\n'
    [unit] = parse_module(source).units
    cst.parse_module(unit.parse_text())
