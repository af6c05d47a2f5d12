"""yamldoc: typed reads from YAML with file, line and field in every error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from allot.config.errors import ConfigError
from allot.config.yamldoc import YamlMap, load_yaml, parse_yaml


def doc(text: str) -> YamlMap:
    return parse_yaml(text, "spec.yaml")


def test_reads_typed_values() -> None:
    m = doc("a: 3\nb: 2.5\nc: hello\nd: true\ne: [1, 2]\nf: {x: 1}\n")
    assert m.get_int("a") == 3
    assert m.get_float("a") == 3.0
    assert m.get_float("b") == 2.5
    assert m.get_str("c") == "hello"
    assert m.get_bool("d") is True
    assert [item.as_int() for item in m.get_list("e")] == [1, 2]
    assert m.get_map("f").get_int("x") == 1
    assert m.keys() == ["a", "b", "c", "d", "e", "f"]


def test_defaults_apply_to_missing_and_empty_values() -> None:
    m = doc("empty:\n")
    assert m.get_int("missing", default=7) == 7
    assert m.get_int("empty", default=7) == 7
    assert m.get_str("missing", default="x") == "x"
    assert m.get_list("missing", default_empty=True) == []


def test_bare_number_is_accepted_as_text() -> None:
    assert doc("name: 2017\n").get_str("name") == "2017"


def test_lines_follow_the_document() -> None:
    m = doc("a: 1\nitems:\n  - x: 1\n  - x: 2\n")
    items = m.get_list("items")
    assert [item.line for item in items] == [3, 4]
    assert items[1].as_map().line_of("x") == 4


@pytest.mark.parametrize(
    ("text", "call", "line", "field", "rule"),
    [
        ("a: 1\nb: x\n", lambda m: m.get_int("b"), 2, "b", "must be an integer"),
        ("a: 1.5\n", lambda m: m.get_int("a"), 1, "a", "must be an integer"),
        ("a: -1\n", lambda m: m.get_int("a", minimum=0), 1, "a", "must be an integer >= 0"),
        ("a: yes\n", lambda m: m.get_float("a"), 1, "a", "must be a number"),
        ("a: 0\n", lambda m: m.get_float("a", positive=True), 1, "a", "must be a number > 0"),
        ("a: .inf\n", lambda m: m.get_float("a"), 1, "a", "finite"),
        ("a: 1\n", lambda m: m.get_bool("a"), 1, "a", "must be true or false"),
        ("a: [1]\n", lambda m: m.get_str("a"), 1, "a", "must be text"),
        ("a: ''\n", lambda m: m.get_str("a"), 1, "a", "must not be empty"),
        ("a: 1\n", lambda m: m.get_list("a"), 1, "a", "must be a list"),
        ("a: 1\n", lambda m: m.get_map("a"), 1, "a", "must be a mapping"),
        ("x: 1\n", lambda m: m.get_int("a"), 1, "a", "is required"),
        (
            "g:\n  - n: 1\n  - n: z\n",
            lambda m: m.get_list("g")[1].as_map().get_int("n"),
            3,
            "g[1].n",
            "integer",
        ),
    ],
)
def test_errors_name_file_line_and_field(
    text: str, call: Callable[[YamlMap], object], line: int, field: str, rule: str
) -> None:
    m = doc(text)
    with pytest.raises(ConfigError) as err:
        call(m)
    assert f"spec.yaml:{line}: field '{field}':" in str(err.value)
    assert rule in str(err.value)
    assert err.value.line == line
    assert err.value.field == field


def test_unknown_key_lists_the_allowed_ones() -> None:
    m = doc("name: a\ncuont: 3\n")
    with pytest.raises(
        ConfigError, match=r"spec.yaml:2: field 'cuont': unknown key; allowed keys: count, name"
    ):
        m.check_keys(("name", "count"))


def test_missing_required_key_is_reported_at_the_mapping() -> None:
    m = doc("\n\nname: a\n")
    with pytest.raises(ConfigError, match=r"spec.yaml:3: field 'count': is required"):
        m.check_keys(("name", "count"), required=("count",))


def test_duplicate_key_is_an_error() -> None:
    with pytest.raises(
        ConfigError, match=r"spec.yaml:2: field 'a': key 'a' repeats the one on line 1"
    ):
        doc("a: 1\na: 2\n")


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"spec.yaml:3: invalid YAML") as err:
        doc("a: 1\nb: [1, 2\nc: 3\n")
    assert err.value.line == 3


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"spec.yaml:1: must be a mapping"):
        doc("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"spec.yaml:1: the document is empty"):
        doc("# only a comment\n")


def test_keys_must_be_text() -> None:
    with pytest.raises(ConfigError, match=r"keys must be text"):
        doc("1: a\n")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent.yaml: no such file"):
        load_yaml(path)


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("n: 4\n", encoding="utf-8")
    m = load_yaml(path)
    assert m.source == str(path)
    assert m.get_int("n") == 4
