"""What the example scripts promise, run as real processes with small sizes: train.py resumes
from its checkpoint, saves one and exits 143 on SIGTERM (a gang's ranks stop at the same
step), and a gang of two ranks computes what one process computes; preprocess.py's shards
decode back to the text's tokens; serve.py answers, refuses bad requests, and stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

EnvFor = Callable[..., dict[str, str]]  # the fixtures of conftest.py
ReadUntil = Callable[[subprocess.Popen[str], str], list[str]]

SCRIPTS = Path(__file__).resolve().parents[2] / "examples" / "jobs"
TIMEOUT_S = 120  # a guard against a hang, never a speed target
SMALL = ["--samples", "256", "--hidden", "8"]


def train(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "train.py"), *SMALL, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def start(script: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def saved_step(directory: Path) -> int:
    with np.load(directory / "checkpoint.npz") as saved:
        return int(saved["step"])


def test_training_resumes_from_its_checkpoint(tmp_path: Path, env_for: EnvFor) -> None:
    first = train(["--steps", "20", "--checkpoint-dir", str(tmp_path)], env_for())
    assert first.returncode == 0, first.stderr
    assert "resuming" not in first.stdout
    assert saved_step(tmp_path) == 20
    again = train(["--steps", "40", "--checkpoint-dir", str(tmp_path)], env_for())
    assert again.returncode == 0, again.stderr
    assert f"resuming from step 20 ({tmp_path / 'checkpoint.npz'})" in again.stdout
    assert "step 40/40" in again.stdout
    assert saved_step(tmp_path) == 40


def test_sigterm_saves_a_checkpoint_and_the_next_run_goes_on(
    tmp_path: Path, env_for: EnvFor, read_until: ReadUntil
) -> None:
    args = ["--steps", "100000000", "--log-every", "1", "--checkpoint-dir", str(tmp_path)]
    with start("train.py", [*SMALL, *args], env_for()) as proc:
        read_until(proc, "step ")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 128 + signal.SIGTERM, out
    stopped = [line for line in out.splitlines() if line.startswith("stopped at step ")]
    step = saved_step(tmp_path)
    assert stopped == [f"stopped at step {step}: saved {tmp_path / 'checkpoint.npz'}"]
    resumed = train(["--steps", str(step + 5), "--checkpoint-dir", str(tmp_path)], env_for())
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {step} " in resumed.stdout
    assert saved_step(tmp_path) == step + 5


def test_a_checkpoint_of_another_size_is_refused_by_name(tmp_path: Path, env_for: EnvFor) -> None:
    assert train(["--steps", "2", "--checkpoint-dir", str(tmp_path)], env_for()).returncode == 0
    other = train(["--steps", "4", "--hidden", "4", "--checkpoint-dir", str(tmp_path)], env_for())
    assert other.returncode == 1
    assert "give the --hidden it was trained with" in other.stderr


def test_a_gang_of_two_computes_what_one_process_computes(
    tmp_path: Path, env_for: EnvFor, free_port: int
) -> None:
    alone = train(["--steps", "25", "--checkpoint-dir", str(tmp_path / "one")], env_for())
    assert alone.returncode == 0, alone.stderr
    args = [*SMALL, "--steps", "25", "--checkpoint-dir", str(tmp_path / "gang")]
    procs = [start("train.py", args, env_for(rank=r, world=2, port=free_port)) for r in (0, 1)]
    outputs = []
    for proc in procs:
        with proc:
            out, _ = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 0, out
        outputs.append(out)
    assert outputs[0].startswith("rank 0 of 2: NumPy on the CPU")
    assert outputs[1].startswith("rank 1 of 2: NumPy on the CPU")
    with (
        np.load(tmp_path / "one" / "checkpoint.npz") as one,
        np.load(tmp_path / "gang" / "checkpoint.npz") as gang,
    ):
        assert sorted(one.files) == sorted(gang.files)
        for name in one.files:
            np.testing.assert_allclose(gang[name], one[name], rtol=1e-9, atol=1e-12)
    # The same losses, step by step (sums over the ranks' halves of the data).
    last = [line for line in alone.stdout.splitlines() if line.startswith("step 25/25")]
    assert len(last) == 1
    assert last[0].split("(")[0] in outputs[0]


def test_sigterm_to_one_rank_stops_the_whole_gang_at_one_step(
    tmp_path: Path, env_for: EnvFor, free_port: int, read_until: ReadUntil
) -> None:
    args = [*SMALL, "--steps", "100000000", "--log-every", "1", "--checkpoint-dir", str(tmp_path)]
    procs = [start("train.py", args, env_for(rank=r, world=2, port=free_port)) for r in (0, 1)]
    try:
        read_until(procs[0], "step ")
        procs[1].send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=TIMEOUT_S)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert [proc.returncode for proc in procs] == [143, 143], outputs
    assert f"stopped at step {saved_step(tmp_path)}: saved" in outputs[0]


def test_tokenized_shards_decode_back_to_the_text(tmp_path: Path, env_for: EnvFor) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.md").write_text("The GPU is busy. The GPU waits!\n", encoding="utf-8")
    (corpus / "sub" / "b.txt").write_text("A queue, a quota; the queue.\n", encoding="utf-8")
    (corpus / "skip.py").write_text("not = text\n", encoding="utf-8")
    out = tmp_path / "tokens"
    args = ["--input", str(corpus), "--output", str(out), "--workers", "2"]
    args += ["--vocab-size", "8", "--shard-size", "7"]
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "preprocess.py"), *args],
        env=env_for(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    assert summary["files"] == 2
    vocab = summary["vocab"]
    assert vocab[:2] == ["<unk>", "<eos>"]
    assert len(vocab) == 8
    ids = np.concatenate([np.load(out / name) for name in summary["shards"]])
    assert ids.dtype == np.uint32
    assert np.load(out / summary["shards"][0]).size == 7
    words = [vocab[i] for i in ids]
    text = "the gpu is busy . the gpu waits ! <eos> a queue , a quota ; the queue . <eos>"
    assert words == [w if w in vocab else "<unk>" for w in text.split(" ")]
    assert summary["unknown"] == words.count("<unk>") > 0


def test_preprocessing_names_a_bad_input(tmp_path: Path, env_for: EnvFor) -> None:
    done = subprocess.run(
        [
            *(sys.executable, str(SCRIPTS / "preprocess.py")),
            *("--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out")),
        ],
        env=env_for(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2
    assert "--input:" in done.stderr
    assert "is not a folder" in done.stderr


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_the_server_embeds_refuses_bad_requests_and_stops_cleanly(
    env_for: EnvFor, read_until: ReadUntil
) -> None:
    with start("serve.py", ["--port", "0", "--dim", "32"], env_for()) as proc:
        try:
            url = read_until(proc, "listening on ")[-1].split()[2]
            texts = ["a GPU job waits", "a GPU job runs", "bananas and apples"]
            status, body = post(f"{url}/embed", json.dumps({"texts": texts}).encode())
            assert (status, body["dim"]) == (200, 32)
            vectors = np.array(body["embeddings"])
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
            similar, unlike = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
            assert similar > unlike
            assert post(f"{url}/embed", b"not json")[0] == 400
            assert post(f"{url}/embed", b'{"texts": [1]}')[0] == 400
            assert post(f"{url}/nothing", b"{}")[0] == 404
            with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
                assert json.load(response) == {"status": "ok", "served": 3}
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 0, out
    assert out.splitlines()[-1] == "stopped after embedding 3 text(s)"


@pytest.mark.parametrize("script", ["train.py", "preprocess.py", "serve.py"])
def test_each_script_says_what_it_needs(script: str) -> None:
    text = (SCRIPTS / script).read_text(encoding="utf-8")
    assert "Needs Python 3.10+ and NumPy" in text
    assert f"python3 examples/jobs/{script}" in text
