"""The job file format of ``allot submit JOB.yaml`` (docs/jobs.md), and durations.

``load_job_file`` reads a YAML job file into a ``JobDraft``: the ``JobSubmission`` fields it
sets, each remembering where it was given. Command-line flags are then ``set`` over it (a flag
wins; ``resources`` and ``env`` merge key by key), and ``JobDraft.submission`` builds the wire
model, turning Pydantic's errors into the same form as the file's own.

Invariants:
- every problem raises ``JobFileError`` naming where the value came from: ``file:line: field
  'key':`` for the file, the flag's name for the command line;
- an environment variable's value never appears in a message, only its name;
- only the fields the user gave are set, so the server's defaults apply to the rest;
- durations are seconds: ``90``, ``90s``, ``30m``, ``2h``, ``1d``, or sums like ``1h30m``;
- dependencies (``after``, ``--after``) are ``ID`` or ``ID:CONDITION``, comma-separated, with
  CONDITION ``ok`` (the default), ``failed`` or ``any``; they become the wire's
  ``[{"job": ID, "condition": CONDITION}]``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from allot.config.errors import ConfigError
from allot.config.yamldoc import YamlMap, YamlNode, load_yaml
from allot.wire.schemas import JobSubmission

FILE_KEYS = (
    "name",
    "queue",
    "priority",
    "tasks",
    "resources",
    "flavors",
    "command",
    "workdir",
    "env",
    "runtime_estimate",
    "time_limit",
    "checkpointable",
    "preemptible",
    "hold",
    "after",
    "profile",
    "flavor_order",
    "speeds",
    "colocate",
    "colocate_required",
)
RESOURCE_KEYS = ("gpus", "cpus", "memory_mib", "memory_gib", "gpu_memory_mib", "gpu_memory_gib")
DURATION_KEYS = {"runtime_estimate": "runtime_estimate_seconds", "time_limit": "time_limit_seconds"}
MIB_PER_GIB = 1024

# The wire field each flag of ``allot submit`` sets.
FLAG_FIELDS = {
    "--gpus": "resources.gpus",
    "--tasks": "tasks",
    "--cpus": "resources.cpus",
    "--memory-mib": "resources.memory_mib",
    "--queue": "queue",
    "--priority": "priority",
    "--flavor": "flavors",
    "--name": "name",
    "--workdir": "workdir",
    "--time-limit": "time_limit_seconds",
    "--estimate": "runtime_estimate_seconds",
    "--checkpointable": "checkpointable",
    "--preemptible": "preemptible",
    "--hold": "hold",
    "--after": "after",
    "--profile": "profile",
    "--profile-steps": "profile.steps",
}
CONDITIONS = ("ok", "failed", "any")

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_STR_TAG = "tag:yaml.org,2002:str"
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SUM_OF_TERMS = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_TERM = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_DEPENDENCY = re.compile(r"\s*(\d+)\s*(?::\s*(\w+)\s*)?")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a bare number is seconds (``90``), or numbers with units ``s``,
    ``m``, ``h``, ``d`` (``30m``, ``1h30m``). Raises ValueError saying the rule."""
    spec = text.strip().lower()
    if _BARE_NUMBER.fullmatch(spec):
        seconds = float(spec)
    elif _SUM_OF_TERMS.fullmatch(spec):
        seconds = sum(float(n) * _SECONDS[unit] for n, unit in _TERM.findall(spec))
    else:
        raise ValueError(f"must be a duration like 90, 90s, 30m, 2h, 1d or 1h30m, got {text!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"must be longer than 0 seconds, got {text!r}")
    return seconds


def parse_after(text: str) -> list[dict[str, object]]:
    """The dependencies in ``text``: ``12``, ``12:any``, ``12,13:failed`` (each ``ID`` or
    ``ID:CONDITION``, comma-separated); raises ValueError saying the rule."""
    found: list[dict[str, object]] = []
    for part in text.split(","):
        match = _DEPENDENCY.fullmatch(part)
        if match is None:
            raise ValueError(
                f"{part.strip()!r} is not ID or ID:CONDITION (CONDITION: ok, failed or any)"
            )
        condition = (match.group(2) or "ok").lower()
        if condition not in CONDITIONS:
            raise ValueError(
                f"{part.strip()!r}: unknown condition {match.group(2)!r}; one of: ok (succeeded,"
                " the default), failed (ended without success), any (ended)"
            )
        found.append({"job": int(match.group(1)), "condition": condition})
    return found


class JobFileError(ValueError):
    """A job that cannot be submitted as given; ``problems`` lists each one, already naming
    the file, line and key (or the flag) it came from."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value was given: a line and key of a job file, or a command-line flag."""

    source: str
    line: int | None = None
    key: str = ""

    def problem(self, rule: str) -> str:
        """``rule`` prefixed with this place, as yamldoc words it for the file's own errors."""
        if self.line is None:
            return f"{self.source}: {rule}"
        return str(ConfigError(self.source, rule, line=self.line, field=self.key))


@dataclass
class JobDraft:
    """The ``JobSubmission`` fields given so far, and where each was given."""

    fields: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, Origin] = field(default_factory=dict)

    def set(self, name: str, value: object, origin: Origin) -> None:
        """Set wire field ``name``; ``resources.gpus`` or ``env.KEY`` set one key of a mapping
        and keep its other keys."""
        head, _, key = name.partition(".")
        if key:
            self.fields.setdefault(head, {})[key] = value
            # A problem with the mapping as a whole is reported where it was last touched.
            self.origins[head] = origin
        else:
            self.fields[name] = value
        self.origins[name] = origin

    def submission(self) -> JobSubmission:
        """The wire model of the job; raises JobFileError naming every invalid field."""
        if "command" not in self.fields:
            raise JobFileError(
                [
                    "no command to run: put it after -- (allot submit --gpus 1 -- python "
                    "train.py) or give `command:` in the job file"
                ]
            )
        try:
            return JobSubmission.model_validate(self.fields)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            raise JobFileError([self._problem(e["loc"], e["msg"]) for e in errors]) from None

    def _problem(self, loc: tuple[int | str, ...], message: str) -> str:
        rule = message.removeprefix("Value error, ")
        parts = [str(p) for p in loc]
        for end in range(len(parts), 0, -1):
            origin = self.origins.get(".".join(parts[:end]))
            if origin is not None:
                return origin.problem(rule)
        return f"{'.'.join(parts) or 'job'}: {rule}"


def load_job_file(path: str | Path) -> JobDraft:
    """Read the job file at ``path``; raises JobFileError for an unreadable file, bad YAML, an
    unknown key or a value of the wrong type."""
    try:
        return _read(load_yaml(path), Path(path).parent)
    except ConfigError as exc:
        raise JobFileError([str(exc)]) from None


def _origin(node: YamlNode) -> Origin:
    return Origin(node.source, node.line, node.field)


def _read(doc: YamlMap, base: Path) -> JobDraft:
    doc.check_keys(FILE_KEYS)
    draft = JobDraft()
    for key in ("name", "queue"):
        if (entry := doc.optional(key)) is not None:
            draft.set(key, entry.as_str(), _origin(entry))
    if (entry := doc.optional("priority")) is not None:
        draft.set("priority", _priority(entry), _origin(entry))
    if (entry := doc.optional("tasks")) is not None:
        draft.set("tasks", entry.as_int(minimum=1), _origin(entry))
    if (entry := doc.optional("resources")) is not None:
        _read_resources(entry.as_map(), draft)
    if (entry := doc.optional("flavors")) is not None:
        draft.set("flavors", [f.as_str() for f in entry.as_list()], _origin(entry))
    if (entry := doc.optional("command")) is not None:
        draft.set("command", _command(entry), _origin(entry))
    if (entry := doc.optional("workdir")) is not None:
        draft.set("workdir", absolute_path(entry.as_str(), base), _origin(entry))
    if (entry := doc.optional("env")) is not None:
        for variable, value in entry.as_pairs():
            draft.set(f"env.{variable.as_str()}", _env_value(value), _origin(value))
    for key, wire in DURATION_KEYS.items():
        if (entry := doc.optional(key)) is not None:
            draft.set(wire, _duration(entry), _origin(entry))
    if (entry := doc.optional("speeds")) is not None:
        for flavor, value in entry.as_pairs():
            speed = value.as_float(positive=True)
            draft.set(f"speeds.{flavor.as_str()}", speed, _origin(value))
    if (entry := doc.optional("colocate")) is not None:
        draft.set("colocate", entry.as_str(), _origin(entry))
    for key in ("checkpointable", "preemptible", "hold", "flavor_order", "colocate_required"):
        if (entry := doc.optional(key)) is not None:
            draft.set(key, entry.as_bool(), _origin(entry))
    if (entry := doc.optional("after")) is not None:
        draft.set("after", _after(entry), _origin(entry))
    if (entry := doc.optional("profile")) is not None:
        _read_profile(entry, draft)
    return draft


def _read_profile(entry: YamlNode, draft: JobDraft) -> None:
    """``profile: true`` (the default window), ``false``, or ``{steps: N, skip: M}``."""
    if isinstance(entry.node, yaml.MappingNode):
        window = entry.as_map()
        window.check_keys(("steps", "skip"))
        draft.set("profile", {}, _origin(entry))
        for key in ("steps", "skip"):
            if (value := window.optional(key)) is not None:
                draft.set(f"profile.{key}", value.as_int(minimum=1), _origin(value))
    elif entry.as_bool():
        draft.set("profile", {}, _origin(entry))


def _after(entry: YamlNode) -> list[dict[str, object]]:
    """``after``: one dependency or a list of them, each an id, ``"ID:CONDITION"`` (or several
    comma-separated), or a mapping ``{job: ID, condition: ok|failed|any}``."""
    items = entry.as_list() if isinstance(entry.node, yaml.SequenceNode) else [entry]
    found: list[dict[str, object]] = []
    for item in items:
        if isinstance(item.node, yaml.MappingNode):
            mapping = item.as_map()
            mapping.check_keys(("job", "condition"), required=("job",))
            dependency: dict[str, object] = {"job": mapping.get_int("job", minimum=1)}
            if "condition" in mapping:
                condition = mapping.get_str("condition")
                if condition not in CONDITIONS:
                    raise mapping.error(
                        "condition", f"must be one of ok, failed, any; got {condition!r}"
                    )
                dependency["condition"] = condition
            found.append(dependency)
        elif _scalar_tag(item) in (_INT_TAG, _STR_TAG):
            try:
                found.extend(parse_after(str(item.node.value)))
            except ValueError as exc:
                raise item.error(str(exc)) from None
        else:
            raise item.error("must be a job id, 'ID:CONDITION' or {job: ID, condition: ...}")
    return found


def _read_resources(resources: YamlMap, draft: JobDraft) -> None:
    resources.check_keys(RESOURCE_KEYS)
    if "memory_mib" in resources and "memory_gib" in resources:
        raise resources.error("memory_gib", "give memory_mib or memory_gib, not both")
    if (entry := resources.optional("gpus")) is not None:
        draft.set("resources.gpus", entry.as_float(minimum=0), _origin(entry))
    if (entry := resources.optional("cpus")) is not None:
        draft.set("resources.cpus", entry.as_float(positive=True), _origin(entry))
    if (entry := resources.optional("memory_mib")) is not None:
        draft.set("resources.memory_mib", entry.as_int(minimum=1), _origin(entry))
    if (entry := resources.optional("memory_gib")) is not None:
        mib = entry.as_float(positive=True) * MIB_PER_GIB
        if abs(mib - round(mib)) > 1e-6:
            raise entry.error(f"must be a whole number of MiB ({mib:g} MiB); use memory_mib")
        draft.set("resources.memory_mib", round(mib), _origin(entry))
    if "gpu_memory_mib" in resources and "gpu_memory_gib" in resources:
        raise resources.error("gpu_memory_gib", "give gpu_memory_mib or gpu_memory_gib, not both")
    if (entry := resources.optional("gpu_memory_mib")) is not None:
        draft.set("resources.gpu_memory_mib", entry.as_int(minimum=1), _origin(entry))
    if (entry := resources.optional("gpu_memory_gib")) is not None:
        mib = entry.as_float(positive=True) * MIB_PER_GIB
        if abs(mib - round(mib)) > 1e-6:
            raise entry.error(f"must be a whole number of MiB ({mib:g} MiB); use gpu_memory_mib")
        draft.set("resources.gpu_memory_mib", round(mib), _origin(entry))


def _scalar_tag(entry: YamlNode) -> str | None:
    return entry.node.tag if isinstance(entry.node, yaml.ScalarNode) else None


def _priority(entry: YamlNode) -> int | str:
    tag = _scalar_tag(entry)
    if tag == _INT_TAG:
        return entry.as_int()
    if tag == _STR_TAG:
        return entry.as_str()
    raise entry.error("must be an integer or the name of a priority class")


def _command(entry: YamlNode) -> list[str] | str:
    if isinstance(entry.node, yaml.SequenceNode):
        # An argument may be empty (``--flag ""``); the schema checks the program itself.
        return [arg.as_str(allow_empty=True) for arg in entry.as_list()]
    if _scalar_tag(entry) is None:
        raise entry.error("must be a list of arguments or a string run with /bin/sh -c")
    return entry.as_str()


def _env_value(entry: YamlNode) -> str:
    # Checked here rather than with as_str, whose message would quote the value.
    if _scalar_tag(entry) not in (_STR_TAG, _INT_TAG, _FLOAT_TAG):
        raise entry.error("must be text or a number (the value is not shown); quote it as text")
    return str(entry.node.value)


def _duration(entry: YamlNode) -> float:
    if _scalar_tag(entry) not in (_STR_TAG, _INT_TAG, _FLOAT_TAG):
        raise entry.error("must be a duration like 90, 90s, 30m, 2h or 1d")
    try:
        # The text as written: YAML would read ``1:30`` as the sexagesimal number 90.
        return parse_duration(str(entry.node.value))
    except ValueError as exc:
        raise entry.error(str(exc)) from None


def absolute_path(path: str, base: Path) -> str:
    """``path`` made absolute against ``base`` (a job file's folder, or the current one), so a
    job file can name folders next to it; the path is not resolved further."""
    return os.path.normpath(os.path.join(os.path.abspath(base), path))


def apply_flags(draft: JobDraft, flags: Mapping[str, object], env: Sequence[str] = ()) -> None:
    """Set the values of ``allot submit``'s flags (keys of ``FLAG_FIELDS``; None: not given)
    over ``draft``. ``--priority`` is a number when it reads as one, else a class name; the
    durations are parsed; a relative ``--workdir`` is taken from the current folder; ``env``
    holds ``K=V``, or ``K`` alone to pass on this process's value (sbatch's ``--export=K``).
    Raises JobFileError naming the flag."""
    for flag, given in flags.items():
        value = given
        if given is None:
            continue
        if flag == "--priority" and isinstance(given, str):
            value = int(given) if re.fullmatch(r"[+-]?\d+", given.strip()) else given
        elif flag in ("--time-limit", "--estimate") and isinstance(given, str):
            try:
                value = parse_duration(given)
            except ValueError as exc:
                raise JobFileError([f"{flag}: {exc}"]) from None
        elif flag == "--workdir" and isinstance(given, str):
            value = absolute_path(given, Path.cwd())
        elif flag == "--profile" and isinstance(given, bool):
            # On: the window given so far (a job file's), else the default one; off: none.
            value = dict(draft.fields.get("profile") or {}) if given else None
        elif flag == "--after" and isinstance(given, list):
            try:
                value = [d for text in given for d in parse_after(text)]
            except ValueError as exc:
                raise JobFileError([f"{flag}: {exc}"]) from None
        draft.set(FLAG_FIELDS[flag], value, Origin(flag))
    for pair in env:
        name, eq, value = pair.partition("=")
        if not eq:
            if name not in os.environ:
                raise JobFileError([f"--env: {name} is not set here; give it as {name}=VALUE"])
            value = os.environ[name]
        draft.set(f"env.{name}", value, Origin(f"--env {name}"))


MAX_ARRAY = 100_000


def parse_array(text: str) -> list[int]:
    """Indices of a job array, as sbatch writes them: ``0-99``, ``0-99:2`` (a step),
    ``1,3,5`` or a mix (``0-3,10``). Raises ValueError naming the rule broken."""
    indices: list[int] = []
    for part in text.split(","):
        part = part.strip()
        span, _, step_text = part.partition(":")
        first, dash, last = span.partition("-")
        try:
            start = int(first)
            stop = int(last) if dash else start
            step = int(step_text) if step_text else 1
        except ValueError:
            raise ValueError(f"--array: {part!r} is not N, N-M or N-M:STEP") from None
        if start < 0 or stop < start or step < 1:
            raise ValueError(f"--array: {part!r} must count up from 0 or more, by a step >= 1")
        indices.extend(range(start, stop + 1, step))
    if len(set(indices)) != len(indices):
        raise ValueError(f"--array: {text!r} names an index twice")
    if len(indices) > MAX_ARRAY:
        raise ValueError(f"--array: at most {MAX_ARRAY:,} jobs, got {len(indices):,}")
    return indices


def array_jobs(submission: JobSubmission, indices: list[int]) -> list[JobSubmission]:
    """One job per index: named ``name[i]`` with ``ALLOT_ARRAY_INDEX`` set to ``i``."""
    base = submission.name or "array"
    return [
        submission.model_copy(
            update={"name": f"{base}[{i}]", "env": {**submission.env, "ALLOT_ARRAY_INDEX": str(i)}}
        )
        for i in indices
    ]
