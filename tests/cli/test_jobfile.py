"""The job file format and durations: every shipped example reads into the JobSubmission it
describes, flags merge over a file, and each bad value is reported with its file, line and key
(an environment variable's value never)."""

from __future__ import annotations

from pathlib import Path

import pytest

from allot.cli.jobfile import JobDraft, JobFileError, apply_flags, load_job_file, parse_duration
from allot.wire.schemas import JobSubmission, TaskResources

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"
SECRET = "s3cr3t-value"


def job_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def read(tmp_path: Path, text: str) -> JobSubmission:
    return load_job_file(job_file(tmp_path, text)).submission()


def problem(tmp_path: Path, text: str) -> str:
    path = job_file(tmp_path, text)
    with pytest.raises(JobFileError) as caught:
        load_job_file(path).submission()
    return str(caught.value).replace(str(path), "job.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1.5h", 5400),
        (" 45S ", 45),
        ("0.5", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "1:30", "-5", "2 h", "h", "1w", "0", "0m", "inf"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        parse_duration(text)


def test_every_example_reads() -> None:
    examples = {path.stem: load_job_file(path).submission() for path in EXAMPLES.glob("*.yaml")}
    assert {
        "train-1gpu",
        "gang-2task",
        "inference-half-gpu",
        "preprocess-cpu",
        "env-workdir-limit",
    } <= set(examples)
    train = examples["train-1gpu"]
    assert train.resources == TaskResources(gpus=1, cpus=1, memory_mib=1024)
    assert (train.runtime_estimate_seconds, train.checkpointable) == (120, True)
    assert train.workdir == str(EXAMPLES.parents[1])  # ../.. from the file: the repository
    gang = examples["gang-2task"]
    assert (gang.tasks, gang.resources.gpus) == (2, 1)
    assert isinstance(gang.command, str)
    assert "$ALLOT_JOB_ID" in gang.command
    assert examples["inference-half-gpu"].resources.gpus == 0.5
    assert examples["preprocess-cpu"].resources.gpus == 0
    env_job = examples["env-workdir-limit"]
    assert env_job.env["OMP_NUM_THREADS"] == "4"
    assert (env_job.workdir, env_job.time_limit_seconds, env_job.hold) == ("/tmp", 7200, True)


def test_every_key(tmp_path: Path) -> None:
    job = read(
        tmp_path,
        (
            "name: sweep\nqueue: research\npriority: high\ntasks: 2\n"
            "resources: {gpus: 0.25, cpus: 2.5, memory_mib: 1024}\nflavors: [H100-80G, A100-40G]\n"
            "command: [python, train.py, --epochs, 3, '']\nworkdir: /srv/work\n"
            "env: {A: text, B: 3, C: 0.10}\nruntime_estimate: 30m\ntime_limit: 90\n"
            "checkpointable: true\npreemptible: false\nhold: true\n"
        ),
    )
    assert (job.name, job.queue, job.priority, job.tasks) == ("sweep", "research", "high", 2)
    assert job.resources == TaskResources(gpus=0.25, cpus=2.5, memory_mib=1024)
    assert job.flavors == ["H100-80G", "A100-40G"]
    assert job.command == ["python", "train.py", "--epochs", "3", ""]
    assert job.env == {"A": "text", "B": "3", "C": "0.10"}  # numbers as written
    assert (job.workdir, job.runtime_estimate_seconds, job.time_limit_seconds) == (
        "/srv/work",
        1800,
        90,
    )
    assert (job.checkpointable, job.preemptible, job.hold) == (True, False, True)
    # Only what the file gives is sent; the server's defaults apply to the rest.
    minimal = read(tmp_path, "command: echo hi\npriority: -5\n")
    assert minimal.model_dump(exclude_unset=True) == {"command": "echo hi", "priority": -5}


def test_memory_in_gib_and_a_relative_workdir(tmp_path: Path) -> None:
    job = read(tmp_path, "command: x\nresources: {memory_gib: 1.5}\nworkdir: data/../runs\n")
    assert job.resources.memory_mib == 1536
    assert job.workdir == str(tmp_path / "runs")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("command: x\ngpus: 1\n", "job.yaml:2: field 'gpus': unknown key; allowed keys: "),
        ("command: x\nresources:\n  gpu: 1\n", "job.yaml:3: field 'resources.gpu': unknown key"),
        ("command: x\ntasks: two\n", "job.yaml:2: field 'tasks': must be an integer"),
        ("command: x\ntasks: 0\n", "job.yaml:2: field 'tasks': must be an integer >= 1"),
        ("command: x\nresources: [1]\n", "field 'resources': must be a mapping"),
        ("command: {a: 1}\n", "field 'command': must be a list of arguments or a string"),
        ("command: x\npriority: 1.5\n", "field 'priority': must be an integer or the name"),
        ("command: x\nflavors: H100\n", "field 'flavors': must be a list"),
        ("command: x\nhold: maybe\n", "field 'hold': must be true or false"),
        ("command: x\ntime_limit: 1:30\n", "job.yaml:2: field 'time_limit': must be a duration"),
        ("command: x\ntime_limit: [1]\n", "field 'time_limit': must be a duration"),
        ("command: x\nresources: {memory_gib: 0.1}\n", "must be a whole number of MiB"),
        ("command: x\nresources: {memory_mib: 1, memory_gib: 1}\n", "not both"),
        ("command: x\nname: a\nname: b\n", "job.yaml:3: field 'name': key 'name' repeats"),
        ("command: [x\n", "job.yaml:2: invalid YAML"),
        ("", "job.yaml:1: the document is empty"),
        ("name: x\n", "no command to run"),
    ],
)
def test_bad_files_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    assert message in problem(tmp_path, text)


def test_the_schemas_rules_are_reported_at_the_files_line(tmp_path: Path) -> None:
    message = problem(tmp_path, "command: [x]\nresources:\n  gpus: 1.5\nflavors: [a, a]\n")
    assert message.startswith("job.yaml:3: field 'resources.gpus': more than one GPU must be ")
    assert "; job.yaml:4: field 'flavors': lists a flavor twice" in message
    assert "Value error" not in message


def test_env_problems_name_the_variable_never_its_value(tmp_path: Path) -> None:
    for text in (
        f"env: {{1BAD: {SECRET}}}\n",
        f"env: {{OK: {SECRET}, SET: yes}}\n",
        f"env: {{OK: [{SECRET}]}}\n",
        "env: {OK: null}\n",
    ):
        message = problem(tmp_path, "command: x\n" + text)
        assert SECRET not in message
        assert "env" in message
    assert "'1BAD' is not a valid environment variable name" in problem(
        tmp_path, f"command: x\nenv: {{1BAD: {SECRET}}}\n"
    )
    assert "field 'env.SET': must be text or a number" in problem(
        tmp_path, "command: x\nenv: {SET: yes}\n"
    )


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(JobFileError, match=r"nope\.yaml: no such file"):
        load_job_file(tmp_path / "nope.yaml")


def test_flags_override_the_file_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = load_job_file(
        job_file(
            tmp_path,
            (
                "name: file\nresources: {gpus: 1, cpus: 4}\nenv: {A: '1', B: '2'}\ncommand: [x]\n"
                "hold: true\nflavors: [a]\n"
            ),
        )
    )
    monkeypatch.setenv("PASSED_ON", SECRET)
    monkeypatch.chdir(tmp_path)
    flags = {
        "--gpus": 2.0,
        "--name": None,
        "--hold": False,
        "--flavor": ["b", "c"],
        "--priority": "7",
        "--time-limit": "2h",
        "--workdir": "out",
    }
    apply_flags(draft, flags, ["B=3", "PASSED_ON"])
    job = draft.submission()
    assert job.resources == TaskResources(gpus=2, cpus=4)
    assert (job.name, job.hold, job.flavors, job.priority) == ("file", False, ["b", "c"], 7)
    assert job.env == {"A": "1", "B": "3", "PASSED_ON": SECRET}
    assert (job.time_limit_seconds, job.workdir) == (7200, str(tmp_path / "out"))


def test_flag_problems_name_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    draft = JobDraft()
    with pytest.raises(JobFileError, match="--estimate: must be a duration"):
        apply_flags(draft, {"--estimate": "later"})
    with pytest.raises(JobFileError, match="--env: NOT_SET_HERE is not set here"):
        apply_flags(draft, {}, ["NOT_SET_HERE"])
    apply_flags(draft, {"--cpus": 0.0001, "--priority": "class-name"}, [f"2X={SECRET}"])
    draft.fields["command"] = ["x"]
    with pytest.raises(JobFileError) as caught:
        draft.submission()
    message = str(caught.value)
    assert "--cpus: must be a whole number of milli-CPU" in message
    assert "--env 2X: '2X' is not a valid environment variable name" in message
    assert SECRET not in message


def test_placement_options(tmp_path: Path) -> None:
    job = read(
        tmp_path,
        """\
        command: python serve.py
        tasks: 2
        resources: {gpus: 0.5, gpu_memory_gib: 20}
        flavors: [L4, A10]
        flavor_order: false
        speeds: {A10: 1.8}
        colocate: rack
        colocate_required: true
        """,
    )
    assert job.resources.gpu_memory_mib == 20 * 1024
    assert (job.flavor_order, job.speeds) == (False, {"A10": 1.8})
    assert (job.colocate, job.colocate_required) == ("rack", True)
