"""Runner processes: same answers as in process, errors cross intact, crashes stay contained.

The crash, hang and wire tests run the real pool and the real wire code against
``fake_runner.py``, a child without torch; the tests marked ``subprocess`` start
real runners that load a model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aimass.errors import BundleFormatError, Unavailable
from aimass.serving.predictor import load_predictor
from aimass.serving.runner import RUNNER_PROGRAM, RunnerPool
from aimass.serving.wire import read_frame, write_frame

TEXTS = ["good great film", "bad awful movie", "it was a very good and happy film", "meh"]


@pytest.fixture(scope="module")
def bundle(trust_workspace):
    """The session's tiny trained classifier 'm' (see tests/conftest.py): its bundle directory."""
    version = trust_workspace.models.get("m@1")
    return trust_workspace.artifacts.resolve(version.uri)


FAKE = (sys.executable, str(Path(__file__).with_name("fake_runner.py")))


def pool_for(directory, count=1, *, program=FAKE, timeout=600.0):
    return RunnerPool(
        directory,
        count=count,
        threads=1,
        device="cpu",
        name="default/m@1",
        program=program,
        timeout=timeout,
    )


def runner_command(directory, program=FAKE):
    """The command a RunnerPool starts, for talking to a runner at the protocol level."""
    return [*program, str(directory), "--device", "cpu"]


def watchdogs():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("aimass-watchdog-")]


def gone(pid, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie child of this process still answers kill(0); reap it if it is ours.
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


@pytest.mark.subprocess
def test_a_runner_answers_as_the_in_process_predictor_does(bundle):
    local = load_predictor(bundle, device="cpu")
    pool = pool_for(bundle, count=2, program=RUNNER_PROGRAM)
    try:
        pool.open()
        assert len(pool.pids()) == 2 and os.getpid() not in pool.pids()
        assert pool.lengths(TEXTS) == local.token_lengths(TEXTS)
        remote, expected = pool.run(list(TEXTS)), local.predict(TEXTS, batch_size=len(TEXTS))
        assert [r["label"] for r in remote] == [r["label"] for r in expected]
        for r, e in zip(remote, expected, strict=True):
            assert r["probabilities"] == pytest.approx(e["probabilities"], abs=1e-5)
    finally:
        pool.close()
    assert all(gone(pid) for pid in pool.pids()) and pool.pids() == []
    deadline = time.monotonic() + 10
    while watchdogs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not watchdogs(), "a closed pool left its watchdog threads running"


def test_a_runner_that_dies_mid_batch_fails_only_that_batch_and_is_replaced(bundle):
    from concurrent.futures import ThreadPoolExecutor

    pool = pool_for(bundle)
    try:
        pool.open()
        (pid,) = pool.pids()
        # Stopped, the runner cannot answer: the batch is surely in flight when it dies.
        os.kill(pid, signal.SIGSTOP)
        with ThreadPoolExecutor(1) as executor:
            batch = executor.submit(pool.run, ["good great film"])
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(Unavailable, match="exited"):
                batch.result(timeout=30)
        assert pool.run(["good great film"])[0]["label"] in ("pos", "neg")
        assert pool.restarts == 1 and pool.pids() != [pid]
    finally:
        pool.close()


def test_a_runner_that_hangs_is_stopped_after_the_timeout_and_replaced(bundle):
    pool = pool_for(bundle, timeout=120)
    try:
        pool.open()
        pool._runners[0].timeout = 1.0  # loading may take seconds; the batch gets 1 s
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGSTOP)  # hung: alive, never answers
        began = time.monotonic()
        with pytest.raises(Unavailable, match="longer than 1 s"):
            pool.run(["good great film"])
        assert time.monotonic() - began < 15
        assert gone(pid)
        pool._runners[0].timeout = 120.0
        assert pool.run(["good great film"])[0]["label"] in ("pos", "neg")
        assert pool.restarts == 1
    finally:
        pool.close()


def test_a_runner_found_dead_between_batches_is_replaced_before_the_next(bundle):
    pool = pool_for(bundle)
    try:
        pool.open()
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        assert pool.run(["bad awful movie"])[0]["label"] in ("pos", "neg")
        assert pool.restarts == 1
    finally:
        pool.close()


def test_a_tampered_bundle_is_refused_in_the_runner_with_the_same_error(bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    config = json.loads((copy / "config.json").read_text())
    config["hidden_dropout_prob"] = 0.5
    (copy / "config.json").write_text(json.dumps(config))
    pool = pool_for(copy)
    with pytest.raises(BundleFormatError):
        # Checked here first (the tokenizer), and again by the runner itself.
        pool.open()
    assert pool.pids() == []


@pytest.mark.subprocess
def test_the_runner_refuses_a_bundle_it_cannot_verify_over_the_wire(bundle, tmp_path):
    """The real runner's own check: the error arrives as a frame, not as a crash."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / "config.json").write_text("{}")
    with subprocess.Popen(
        runner_command(copy, RUNNER_PROGRAM), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as proc:
        message = read_frame(proc.stdout)
        assert proc.wait(60) == 1
    assert message is not None and message["error"]["code"] == "BUNDLE_INVALID"


def test_a_load_failure_arrives_as_a_frame_and_the_pool_starts_nothing(bundle, monkeypatch):
    monkeypatch.setenv("AIMASS_FAKE_RUNNER", "fail-load")
    pool = pool_for(bundle, count=2)
    with pytest.raises(BundleFormatError, match="fake runner refuses"):
        pool.open()
    assert pool.pids() == []


def test_the_wire_carries_only_frames_even_when_a_library_prints(bundle, tmp_path):
    """Protocol level: ready, a batch, errors for malformed requests, exit on EOF; a
    print (here at exit, from a sitecustomize) lands on stderr, not in the pipe."""
    (tmp_path / "sitecustomize.py").write_text(
        "import atexit\natexit.register(lambda: print('noise from a library'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    with subprocess.Popen(
        runner_command(bundle),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        assert read_frame(proc.stdout)["ready"] is True
        write_frame(proc.stdin, {"texts": ["good great film"]})
        assert len(read_frame(proc.stdout)["results"]) == 1
        write_frame(proc.stdin, {"text": "no list"})
        assert read_frame(proc.stdout)["error"]["code"] == "INVALID_ARGUMENT"
        write_frame(proc.stdin, {"texts": [""]})
        assert read_frame(proc.stdout)["error"]["code"] == "INVALID_ARGUMENT"
        proc.stdin.close()
        assert proc.wait(30) == 0
        assert proc.stdout.read() == b""  # nothing but frames on the wire
        assert b"noise from a library" in proc.stderr.read()


@pytest.mark.subprocess  # a real server process to kill, with its (fake) runner
def test_runners_exit_when_their_server_is_killed(bundle, tmp_path):
    script = tmp_path / "server.py"
    script.write_text(
        "import sys, time\n"
        "from aimass.serving.runner import RunnerPool\n"
        f"pool = RunnerPool({str(bundle)!r}, count=1, threads=1, device='cpu', name='m',\n"
        f"                  program={FAKE!r})\n"
        "pool.open()\n"
        "print(pool.pids()[0], flush=True)\n"
        "time.sleep(600)\n"
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as server:
        runner = int(server.stdout.readline())
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    # The runner is the dead server's child, so not ours to reap: it must exit by itself.
    assert gone(runner, timeout=30)


# -- one serving path: explanations and generations run in the runners too ---------------------


def test_explanations_are_computed_in_a_runner(bundle):
    pool = pool_for(bundle)
    try:
        pool.open()
        results = pool.run(["good film", "bad film"])
        explained = pool.explain(["good film", "bad film"], results, "occlusion")
        assert [r["label"] for r in explained] == ["pos", "neg"]
        assert explained[0]["explanation"] == {
            "method": "occlusion",
            "words": ["good", "film"],
            "pid": pool.pids()[0],
        }
    finally:
        pool.close()


def test_a_generation_streams_from_a_runner_and_frees_it_at_the_end(bundle):
    pool = pool_for(bundle)
    try:
        pool.open()
        events = list(pool.generate_stream("cat dog", {"max_new_tokens": 3}))
        assert [e.get("text") for e in events[:-1]] == ["cat ", "dog ", "cat "]
        assert events[-1] == {"done": True, "text": "cat dog cat", "finish_reason": "length"}
        assert events[0]["pid"] == pool.pids()[0] and pool.busy == 0
        assert pool.run(["good"])[0]["label"] == "pos"
    finally:
        pool.close()


def test_closing_a_stream_cancels_the_generation_and_keeps_the_runner(bundle):
    pool = pool_for(bundle)
    try:
        pool.open()
        pid = pool.pids()[0]
        stream = pool.generate_stream("a b", {"max_new_tokens": 10_000, "delay": 0.01})
        assert next(stream)["text"] == "a " and pool.busy == 1
        started = time.monotonic()
        stream.close()  # the client went away
        # The runner stopped within a token or so, answered, and serves the next call.
        assert time.monotonic() - started < 5 and pool.busy == 0
        assert pool.run(["good"])[0]["pid"] == pid and pool.restarts == 0
        again = list(pool.generate_stream("x", {"max_new_tokens": 2}))
        assert again[-1]["done"] and again[0]["pid"] == pid
    finally:
        pool.close()


def test_generating_with_a_model_that_cannot_is_refused_by_the_runner(bundle, monkeypatch):
    from aimass.errors import UnsupportedModel

    monkeypatch.setenv("AIMASS_FAKE_RUNNER", "classifier")
    pool = pool_for(bundle)
    try:
        pool.open()
        with pytest.raises(UnsupportedModel, match="does not generate text"):
            next(pool.generate_stream("hi", {}))
        assert pool.run(["good"])[0]["label"] == "pos" and pool.restarts == 0
    finally:
        pool.close()


def mux_pool(directory, count=1, **kw):
    return RunnerPool(
        directory,
        count=count,
        threads=1,
        device="cpu",
        name="default/g@1",
        program=FAKE,
        multiplex=True,
        **kw,
    )


def test_a_multiplexed_runner_runs_generations_at_once_and_answers_predict_between(bundle):
    from concurrent.futures import ThreadPoolExecutor

    pool = mux_pool(bundle)
    try:
        pool.open()
        options = {"max_new_tokens": 12, "delay": 0.05}
        prompts = ["a b", "c d", "e f"]
        with ThreadPoolExecutor(3) as threads:
            running = [
                threads.submit(lambda p: list(pool.generate_stream(p, options)), p) for p in prompts
            ]
            # A predict call while the generations run: its answer is not a stream's frame.
            assert pool.run(["good"])[0]["label"] == "pos"
            results = [f.result(timeout=60) for f in running]
        for prompt, events in zip(prompts, results, strict=True):
            words = (prompt.split() * 12)[:12]
            assert events[-1]["text"] == " ".join(words)
            assert [e["text"] for e in events[:-1]] == [w + " " for w in words]
        # All three were in the one runner together, each with its own events.
        assert max(e["active"] for events in results for e in events[:-1]) == 3
        assert {e["pid"] for events in results for e in events[:-1]} == set(pool.pids())
        assert pool.busy == 0 and pool.restarts == 0
    finally:
        pool.close()


def test_closing_one_multiplexed_stream_cancels_only_it(bundle):
    pool = mux_pool(bundle)
    try:
        pool.open()
        long = pool.generate_stream("x", {"max_new_tokens": 10_000, "delay": 0.01})
        short = pool.generate_stream("y", {"max_new_tokens": 30, "delay": 0.01})
        assert next(long)["text"] == "x " and next(short)["text"] == "y "
        assert pool.busy == 2
        long.close()  # its client went away
        rest = list(short)
        assert rest[-1]["done"] and len(rest) == 30 and pool.busy == 0
        # The runner stopped the cancelled one: a new generation runs alone.
        again = list(pool.generate_stream("z", {"max_new_tokens": 2}))
        assert again[0]["active"] == 1 and pool.restarts == 0
    finally:
        pool.close()


def test_a_multiplexed_runner_that_dies_fails_its_streams_and_is_replaced(bundle):
    pool = mux_pool(bundle)
    try:
        pool.open()
        first = pool.pids()[0]
        running = pool.generate_stream("a", {"max_new_tokens": 10_000, "delay": 0.01})
        assert next(running)["text"] == "a "
        with pytest.raises(Unavailable, match="exited"):
            list(pool.generate_stream("crash", {}))
        with pytest.raises(Unavailable, match="exited"):
            list(running)  # the other stream of the dead runner fails too, it does not hang
        events = list(pool.generate_stream("b", {"max_new_tokens": 2}))
        assert events[-1]["done"] and pool.restarts == 1 and pool.pids() != [first]
    finally:
        pool.close()


def test_a_stream_error_reaches_only_its_caller(bundle, monkeypatch):
    from aimass.errors import UnsupportedModel

    monkeypatch.setenv("AIMASS_FAKE_RUNNER", "classifier")
    pool = mux_pool(bundle)
    try:
        pool.open()
        with pytest.raises(UnsupportedModel, match="does not generate text"):
            next(pool.generate_stream("hi", {}))
        assert pool.run(["good"])[0]["label"] == "pos" and pool.restarts == 0 and pool.busy == 0
    finally:
        pool.close()


def test_generations_go_to_the_runner_with_the_fewest(bundle):
    pool = mux_pool(bundle, count=2)
    try:
        pool.open()
        streams = [pool.generate_stream(p, {"max_new_tokens": 100, "delay": 0.01}) for p in "abcd"]
        pids = [next(s)["pid"] for s in streams]
        assert sorted(pids.count(pid) for pid in set(pids)) == [2, 2]
        for stream in streams:
            stream.close()
    finally:
        pool.close()


def test_a_stream_of_a_dead_runner_leaves_the_runner_started_since_alone(bundle):
    pool = mux_pool(bundle)
    try:
        pool.open()
        old = pool.pids()[0]
        orphan = pool.generate_stream("a", {"max_new_tokens": 10_000, "delay": 0.01})
        assert next(orphan)["pid"] == old
        os.kill(old, signal.SIGKILL)
        assert gone(old)
        # The next generation starts a new runner before the orphan's reader notices.
        fresh = pool.generate_stream("b", {"max_new_tokens": 50, "delay": 0.01})
        new = next(fresh)["pid"]
        assert new != old and pool.restarts == 1
        with pytest.raises(Unavailable, match="a new runner has started"):
            list(orphan)
        # The orphan's end did not stop the new runner.
        assert list(fresh)[-1]["done"] and pool.pids() == [new] and pool.restarts == 1
    finally:
        pool.close()
