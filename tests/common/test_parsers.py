"""The strict JSON parser's walk: the depth limit at its edge, and the path it names for a NUL
or a lone surrogate, however deep."""

import io

import pytest
from rest_framework.exceptions import ParseError, ValidationError

from common.api.parsers import MAX_DEPTH, StrictJSONParser


def parse(text: str):
    return StrictJSONParser().parse(io.BytesIO(text.encode()))


def nested(depth: int) -> str:
    """A value ``depth`` containers deep: ``[[...[1]...]]``."""
    return "[" * depth + "1" + "]" * depth


def test_the_depth_limit_is_exact():
    assert parse(nested(MAX_DEPTH)) is not None
    with pytest.raises(ParseError, match="nested deeper"):
        parse(nested(MAX_DEPTH + 1))
    # Empty containers at the limit hold nothing deeper.
    assert parse("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)) is not None


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"a": {"b": ["ok", "x\\u0000"]}}', "a.b[1]"),
        ('[{"m": "\\ud800"}]', "[0].m"),
        ('{"m": "\\uDC00"}', "m"),
        ('{"a": {"\\uD800": 1}}', "a"),
        ('{"a": [{"k\\u0000": 1}]}', "a[0]"),
        ('"\\u0000"', "body"),
        ('{"e": "caf\\u00e9", "z": [1, {"n": "\\u0000"}]}', "z[1].n"),
    ],
)
def test_a_bad_string_is_refused_by_its_path(text, path):
    with pytest.raises(ValidationError) as refused:
        parse(text)
    assert path in refused.value.detail


def test_text_without_escapes_is_taken_as_it_is():
    data = {"message": "café ✓ 😀 tab", "deep": [[{"x": "y"}]]}
    assert parse('{"message": "café ✓ 😀 tab", "deep": [[{"x": "y"}]]}') == data
    with pytest.raises(ParseError):
        parse('{"message": "raw \x00 nul"}')  # a raw control character is not JSON


@pytest.mark.parametrize(
    "escape", ["", ' "e": "caf\\u00e9",', ' "e": "\\ud83d\\ude00",'], ids=["none", "e", "pair"]
)
def test_the_depth_limit_is_the_same_with_or_without_an_escape_in_the_body(escape):
    """A body with no NUL or surrogate escape skips the string checks (one with a surrogate pair
    takes the full walk); its depth is checked all the same."""

    def deep(depth: int) -> str:
        return "{" + escape + ' "a": ' + '{"k": ' * (depth - 1) + "1" + "}" * depth

    assert parse(deep(MAX_DEPTH)) is not None
    with pytest.raises(ParseError, match="nested deeper"):
        parse(deep(MAX_DEPTH + 1))
    # One value too deep among many shallow ones, at the end of a wide body.
    shallow = ", ".join(["1", '"x"', "{}", "[]", '{"a": [1, 2]}'] * 200)
    wide = f'[{{{escape} "s": [{shallow}]}}, {nested(MAX_DEPTH)}]'
    with pytest.raises(ParseError, match="nested deeper"):
        parse(wide)


def test_escapes_that_make_no_bad_string_are_accepted():
    assert parse('{"m": "\\ud83d\\ude00 \\u00e9"}') == {"m": "😀 é"}
    # An escaped backslash before "u0000" is text, not a NUL.
    assert parse('{"m": "\\\\u0000"}') == {"m": "\\u0000"}
    assert parse('{"m": "\\u0041\\uDBFF\\uDFFF"}') == {"m": "A\U0010ffff"}
