"""The classes every ``allot`` command is built from, and how their help reads.

- ``Command``: one usage style, ``allot hold [OPTIONS] JOB_ID...``: a required argument bare,
  an optional one in brackets (``[JOB.yaml]``), ``...`` when it repeats. Help shows an
  option's metavar (``N``, ``NAME``, ``K=V``, ``DURATION``), never a Python type, and nothing
  after a flag.
- ``CommandAfterDashes``: a ``Command`` whose words after ``--`` are a program's argv, kept
  away from its own options (``allot submit [OPTIONS] [JOB.yaml] [-- COMMAND...]``).
- ``LazyGroup``: the ``allot`` group (and ``allot admin``'s). It knows its commands from a
  table of ``Entry`` (name, ``module:function`` or ``module:GroupClass``, one-line help) and
  imports a command's module only when that command runs or shows its own help, so
  ``allot --help`` imports none of them.

Invariant: this module imports Typer and the standard library only; the command line starts
with it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

ARGV = "allot.argv"  # where CommandAfterDashes keeps the words after ``--``


class _Argument(TyperArgument):
    """An argument whose help shows its metavar alone, not its Python type as well."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _shown_plainly(param: object) -> None:
    """Make ``param``'s help free of Python types: an argument shows its metavar, a flag
    nothing, an option without a metavar its name (``--port PORT``). (Typer builds its own
    parameter objects; this only changes how one is shown.)"""
    if isinstance(param, TyperArgument) and not isinstance(param, _Argument):
        param.__class__ = _Argument
    elif isinstance(param, TyperOption) and param.metavar is None:
        param.metavar = "" if param.is_flag else (param.name or "value").upper()


class _PlainHelp:
    """Shared by the command and group classes: every parameter, ``--help`` included, shown
    without its Python type."""

    params: list[Any]

    def _plain_params(self) -> None:
        for param in self.params:
            _shown_plainly(param)

    def _plain_help_option(self, option: Any) -> Any:
        if option is not None:
            _shown_plainly(option)
            # Absent, the flag reads None, which Typer coerces through Pydantic (it skips that
            # only for a bool): that import alone would double the start of `allot CMD --help`.
            option.default = False
        return option


class Command(_PlainHelp, TyperCommand):
    """An ``allot`` command: usage in one style, help without Python types."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain_params()

    def get_help_option(self, ctx: Any) -> Any:
        return self._plain_help_option(super().get_help_option(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                if param.nargs != 1:
                    name += "..."
                pieces.append(name if param.required else f"[{name}]")
        return pieces


class CommandAfterDashes(Command):
    """A command whose words after ``--`` are a program's argv, kept away from its options;
    the command finds them in ``ctx.meta[ARGV]``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[ARGV] = args[at + 1 :]
            args = args[:at]
        # Words left over are most likely a command missing its --; the command says so.
        ctx.allow_extra_args = True
        result: list[str] = super().parse_args(ctx, args)
        return result

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- COMMAND...]"]


class Group(_PlainHelp, TyperGroup):
    """A group of sub-commands (``allot node check``), its help in the same style."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain_params()

    def get_help_option(self, ctx: Any) -> Any:
        return self._plain_help_option(super().get_help_option(ctx))


@dataclass(frozen=True, slots=True)
class Entry:
    """One command of the group: ``target`` is ``module:function`` (or ``module:app`` for a
    ``typer.Typer`` of sub-commands); ``help`` is the first line of the function's docstring
    (``allot --help`` shows it without importing the module)."""

    target: str
    help: str
    cls: type[Command] = Command
    no_args_is_help: bool = False


class LazyGroup(_PlainHelp, TyperGroup):
    """The ``allot`` group over ``entries`` (set by a subclass), loading each command on use."""

    entries: Mapping[str, Entry] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plain_params()
        self._loaded: dict[str, Any] = {}
        self._listing = False
        # Stand-ins that carry a name and a line of help: enough to list the commands (and to
        # suggest one for a typo) without importing any.
        self.commands = {
            name: Command(name, help=entry.help) for name, entry in self.entries.items()
        }

    def get_help_option(self, ctx: Any) -> Any:
        return self._plain_help_option(super().get_help_option(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True  # the commands panel needs names and help lines only
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.entries:
            return None
        if self._listing:
            return self.commands[cmd_name]
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = self.load(cmd_name)
        return self._loaded[cmd_name]

    def load(self, name: str) -> Any:
        """Import the command's module and build the command from its function (or, for a
        ``typer.Typer`` of sub-commands such as ``allot node check``, the group; for a
        ``LazyGroup`` class such as ``allot admin``, the group of sub-commands it lists)."""
        entry = self.entries[name]
        module, _, attr = entry.target.partition(":")
        function = getattr(importlib.import_module(module), attr)
        if isinstance(function, typer.Typer):
            return typer.main.get_group(function)
        if isinstance(function, type) and issubclass(function, LazyGroup):
            return function(name=name, help=entry.help, no_args_is_help=True)
        single = typer.Typer(add_completion=False)
        single.command(name=name, cls=entry.cls, no_args_is_help=entry.no_args_is_help)(function)
        command = typer.main.get_command(single)
        assert isinstance(command, Command)
        return command
