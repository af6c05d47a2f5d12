"""YAML documents that remember where each value came from.

The simulator's cluster files and synthetic workload specs are YAML written by hand, so a bad
value must be reported as ``path:line: field 'x': rule``. ``load_yaml`` composes the document
(``yaml.compose`` keeps every node's ``start_mark``) instead of loading plain Python values, and
the ``YamlNode`` / ``YamlMap`` wrappers read typed values out of it.

Invariants:
- every problem (unreadable file, bad syntax, duplicate or unknown key, wrong type, value out of
  range) raises ``ConfigError`` naming the file, the 1-based line and the dotted field path;
- scalars are resolved with PyYAML's safe rules, so ``true`` is a bool and ``8`` an int;
- a mapping never silently keeps the last of two equal keys: that is an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import yaml

from allot.config.errors import ConfigError

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"


def load_yaml(path: str | Path) -> YamlMap:
    """Read the YAML file at ``path``; its top level must be a mapping."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"cannot read: {exc}") from None
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> YamlMap:
    """Parse ``text`` (read from ``source``, used in messages); the top level must be a mapping."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(source, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if root is None:
        raise ConfigError(source, "the document is empty; expected a mapping", line=1)
    return YamlNode(source, root, "", loader).as_map()


class YamlNode:
    """One value of a document, with the file, line and dotted field path it came from."""

    __slots__ = ("_loader", "field", "node", "source")

    def __init__(self, source: str, node: yaml.Node, field: str, loader: yaml.SafeLoader) -> None:
        self.source = source
        self.node = node
        self.field = field
        self._loader = loader

    @property
    def line(self) -> int:
        """The 1-based line where this value starts."""
        return int(self.node.start_mark.line) + 1

    def error(self, rule: str) -> ConfigError:
        """A ``ConfigError`` for this value: file, line and field, then ``rule``."""
        return ConfigError(self.source, rule, line=self.line, field=self.field)

    def _kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        return repr(self.node.value)

    def _scalar(self) -> object:
        if not isinstance(self.node, yaml.ScalarNode):
            return _NOT_SCALAR
        try:
            return self._loader.construct_object(self.node, deep=True)
        except yaml.YAMLError as exc:
            raise self.error(f"cannot read value: {exc}") from None

    @property
    def is_null(self) -> bool:
        """True for an empty value or ``null``."""
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag == _NULL_TAG

    def as_int(self, *, minimum: int | None = None) -> int:
        """An integer, at least ``minimum`` when given."""
        value = self._scalar()
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"must be an integer, got {self._kind()}")
        if minimum is not None and value < minimum:
            raise self.error(f"must be an integer >= {minimum}, got {value}")
        return value

    def as_float(self, *, minimum: float | None = None, positive: bool = False) -> float:
        """A finite number (an integer is accepted); ``> 0`` when ``positive``."""
        value = self._scalar()
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(f"must be a number, got {self._kind()}")
        number = float(value)
        if not math.isfinite(number):
            raise self.error(f"must be a finite number, got {value}")
        if positive and number <= 0:
            raise self.error(f"must be a number > 0, got {value}")
        if minimum is not None and number < minimum:
            raise self.error(f"must be a number >= {minimum}, got {value}")
        return number

    def as_bool(self) -> bool:
        """``true`` or ``false``."""
        value = self._scalar()
        if not isinstance(value, bool):
            raise self.error(f"must be true or false, got {self._kind()}")
        return value

    def as_str(self, *, allow_empty: bool = False) -> str:
        """Text. A number written bare (``name: 2017``) is taken as the text it was written as."""
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag not in (
            _STR_TAG,
            _INT_TAG,
            _FLOAT_TAG,
        ):
            raise self.error(f"must be text, got {self._kind()}")
        text = str(self.node.value)
        if not text and not allow_empty:
            raise self.error("must not be empty")
        return text

    def as_list(self) -> list[YamlNode]:
        """The items of a list, each with its own line and a field path ending in ``[i]``."""
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"must be a list, got {self._kind()}")
        return [
            YamlNode(self.source, item, f"{self.field}[{i}]", self._loader)
            for i, item in enumerate(self.node.value)
        ]

    def as_pairs(self) -> list[tuple[YamlNode, YamlNode]]:
        """The (key, value) entries of a mapping whose keys need not be text (``{1: 0.5}``)."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"must be a mapping, got {self._kind()}")
        pairs: list[tuple[YamlNode, YamlNode]] = []
        seen: dict[object, int] = {}
        for key_node, value_node in self.node.value:
            key = YamlNode(self.source, key_node, self.field, self._loader)
            if not isinstance(key_node, yaml.ScalarNode):
                raise key.error(f"keys must be plain values, got {key._kind()}")
            key_value = key._scalar()
            label = f"{self.field}.{key_node.value}" if self.field else str(key_node.value)
            key.field = label
            if key_value in seen:
                raise key.error(f"key {key_node.value!r} repeats the one on line {seen[key_value]}")
            seen[key_value] = key.line
            pairs.append((key, YamlNode(self.source, value_node, label, self._loader)))
        return pairs

    def as_map(self) -> YamlMap:
        """A mapping with text keys."""
        entries: dict[str, YamlNode] = {}
        for key, value in self.as_pairs():
            if not isinstance(key.node, yaml.ScalarNode) or key.node.tag != _STR_TAG:
                raise key.error(f"keys must be text, got {key._kind()}")
            entries[str(key.node.value)] = value
        return YamlMap(self, entries)


_NOT_SCALAR = object()


class YamlMap:
    """A mapping of a document with text keys, read one typed field at a time.

    A getter without ``default`` treats the key as required; with ``default`` a missing key (or
    an empty value) gives the default.
    """

    __slots__ = ("_entries", "node")

    def __init__(self, node: YamlNode, entries: dict[str, YamlNode]) -> None:
        self.node = node
        self._entries = entries

    @property
    def source(self) -> str:
        """The file the mapping came from."""
        return self.node.source

    @property
    def line(self) -> int:
        """The 1-based line where the mapping starts."""
        return self.node.line

    def keys(self) -> list[str]:
        """The keys in document order."""
        return list(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def field_name(self, key: str) -> str:
        """The dotted field path of ``key`` inside this mapping."""
        return f"{self.node.field}.{key}" if self.node.field else key

    def line_of(self, key: str) -> int:
        """The line of ``key``'s value, or of the mapping when the key is absent."""
        entry = self._entries.get(key)
        return self.line if entry is None else entry.line

    def error(self, key: str, rule: str) -> ConfigError:
        """A ``ConfigError`` naming ``key`` (at its line when present, else the mapping's)."""
        return ConfigError(self.source, rule, line=self.line_of(key), field=self.field_name(key))

    def check_keys(self, allowed: Iterable[str], *, required: Iterable[str] = ()) -> None:
        """Reject keys outside ``allowed`` and report the first missing ``required`` key."""
        allowed_set = set(allowed)
        for key, value in self._entries.items():
            if key not in allowed_set:
                raise value.error(f"unknown key; allowed keys: {', '.join(sorted(allowed_set))}")
        for key in required:
            if key not in self._entries:
                raise self.error(key, "is required")

    def node_of(self, key: str) -> YamlNode:
        """The value of a required ``key``."""
        entry = self._entries.get(key)
        if entry is None:
            raise self.error(key, "is required")
        return entry

    def optional(self, key: str) -> YamlNode | None:
        """The value of ``key``, or None when it is absent or empty."""
        entry = self._entries.get(key)
        return None if entry is None or entry.is_null else entry

    def get_int(self, key: str, *, minimum: int | None = None, default: int | None = None) -> int:
        """An integer field."""
        entry = self.optional(key)
        if entry is None and default is not None:
            return default
        return self.node_of(key).as_int(minimum=minimum)

    def get_float(
        self,
        key: str,
        *,
        minimum: float | None = None,
        positive: bool = False,
        default: float | None = None,
    ) -> float:
        """A number field (integers accepted)."""
        entry = self.optional(key)
        if entry is None and default is not None:
            return default
        return self.node_of(key).as_float(minimum=minimum, positive=positive)

    def get_str(self, key: str, *, default: str | None = None) -> str:
        """A non-empty text field."""
        entry = self.optional(key)
        if entry is None and default is not None:
            return default
        return self.node_of(key).as_str()

    def get_bool(self, key: str, *, default: bool | None = None) -> bool:
        """A ``true``/``false`` field."""
        entry = self.optional(key)
        if entry is None and default is not None:
            return default
        return self.node_of(key).as_bool()

    def get_list(self, key: str, *, default_empty: bool = False) -> list[YamlNode]:
        """A list field; with ``default_empty`` a missing key gives ``[]``."""
        entry = self.optional(key)
        if entry is None and default_empty:
            return []
        return self.node_of(key).as_list()

    def get_map(self, key: str) -> YamlMap:
        """A nested mapping field."""
        return self.node_of(key).as_map()
