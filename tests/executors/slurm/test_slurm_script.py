"""Snapshots of the batch scripts allot submits: what a one-task run and a gang ask of Slurm,
line by line."""

from __future__ import annotations

from allot.executors.slurm.script import BatchJob, job_name, render, run_of

PYTHON = "/venv/bin/python"
RUNNER = "/src/allot/executors/runner.py"


def test_a_one_task_run_is_pinned_to_its_node_and_execs_the_runner() -> None:
    job = BatchJob("r1", 7, ("n1",), 1, 2, 4096, 3, "/data/slurm/runs/r1", PYTHON, RUNNER)
    assert render(job) == (
        "#!/bin/sh\n"
        "# allot job 7, run r1: written by allot's Slurm executor.\n"
        "#SBATCH --job-name=allot-r1\n"
        "#SBATCH --comment=allot-job-7\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --nodelist=n1\n"
        "#SBATCH --cpus-per-task=2\n"
        "#SBATCH --mem=4096M\n"
        "#SBATCH --gres=gpu:1\n"
        "#SBATCH --time=3\n"
        "#SBATCH --chdir=/data/slurm/runs/r1\n"
        "#SBATCH --output=/data/slurm/runs/r1/slurm-%j.out\n"
        "#SBATCH --open-mode=append\n"
        "#SBATCH --no-requeue\n"
        "exec /venv/bin/python -I -S /src/allot/executors/runner.py /data/slurm/runs/r1/task-0\n"
    )


def test_a_gang_places_each_task_through_a_hostfile_and_one_srun() -> None:
    job = BatchJob("r2", 8, ("n1", "n1", "n2"), 2, 4, 1000, None, "/data/r2", PYTHON, RUNNER, "gpu")
    assert render(job) == (
        "#!/bin/sh\n"
        "# allot job 8, run r2: written by allot's Slurm executor.\n"
        "#SBATCH --job-name=allot-r2\n"
        "#SBATCH --comment=allot-job-8\n"
        "#SBATCH --partition=gpu\n"
        "#SBATCH --nodes=2\n"
        "#SBATCH --ntasks=3\n"
        "#SBATCH --distribution=arbitrary\n"
        "#SBATCH --cpus-per-task=4\n"
        "#SBATCH --mem-per-cpu=250M\n"
        "#SBATCH --gpus-per-task=2\n"
        "#SBATCH --chdir=/data/r2\n"
        "#SBATCH --output=/data/r2/slurm-%j.out\n"
        "#SBATCH --open-mode=append\n"
        "#SBATCH --no-requeue\n"
        "exec srun --kill-on-bad-exit=0 --wait=0 /bin/sh -c "
        """'exec "$0" -I -S "$1" "$2/task-$SLURM_PROCID"' """
        "/venv/bin/python /src/allot/executors/runner.py /data/r2\n"
    )
    assert job.hostfile == "n1\nn1\nn2\n"


def test_a_cpu_task_asks_for_no_gpu_and_paths_are_quoted() -> None:
    job = BatchJob("r3", 9, ("n2",), 0, 1, 0, None, "/data/r3", "/my python", RUNNER)
    script = render(job)
    assert "gpu" not in script.replace("allot", "")
    assert "--mem" not in script
    assert script.endswith(f"exec '/my python' -I -S {RUNNER} /data/r3/task-0\n")


def test_the_job_name_tags_the_run() -> None:
    assert job_name("abc") == "allot-abc"
    assert run_of("allot-abc") == "abc"
    assert run_of("train") is None
