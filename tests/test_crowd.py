"""A crowd at the app: a bounded line with readable refusals, one run per visitor, endpoints that skip the line.

The app test serves its own app with a line of 2 runs on the embedded world: one client holds the sampling slot with
a long run (stopped at the end), and a handful of clients arrive at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import free_port
from gradio_client import Client
from gradio_client.exceptions import ValidationError

import app
from guidance.playground.crowd import STALE_SECONDS, Admissions, exposure
from guidance.playground.upkeep import CacheCleaner

QUEUE = 2


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_line_is_bounded_and_holds_one_run_per_visitor() -> None:
    clock = Clock()
    line = Admissions(2, clock)
    assert line.admit("a") is None and line.admit("b") is None
    assert "You already have a run waiting" in line.admit("a")
    full = line.admit("c")
    assert full.startswith("The queue is full: 2 runs are waiting") and "try again in a minute" in full
    with line.running("a"):
        assert "You already have a run running" in line.admit("a")
        assert line.waiting() == 1 and line.admit("c") is None
        clock.now += 12.2
    assert line.run_seconds() == pytest.approx(12.2)
    assert "try again in about 13 s" in line.admit("a")  # b and c wait; a place frees up in about one run's time
    line.release("b")  # b's visitor left
    assert line.admit("a") is None
    with line.running("c"):
        assert line.waiting() == 1
    assert line.admit(None) is None and line.waiting() == 2  # a REST call without a session takes a place...
    with line.running("its-event"):  # ... which its run, under a session Gradio gives it, takes over
        assert line.waiting() == 1 and line.admit("f") is None
    clock.now += STALE_SECONDS + 1  # runs admitted that never started: their visitors left, Gradio dropped them
    assert line.admit("e") is None and line.waiting() == 1 and "already" in line.admit("e")


def test_a_visitor_arriving_reads_how_full_the_line_is() -> None:
    clock = Clock()
    line = Admissions(3, clock)
    assert line.line() == "**queue:** 0 of 3 places taken"
    with line.running("a"):
        clock.now += 4.5
    assert line.admit("b") is None and line.admit("c") is None
    assert line.line() == "**queue:** 2 of 3 places taken, about 14 s to wait"  # the two waiting and the next: 3 runs of 4.5 s


def test_a_public_launch_says_what_it_exposes() -> None:
    text = exposure("0.0.0.0", 7860, True, ["/face", "/stop"], 8, 20 * 2**20)
    assert "every address of this machine, port 7860" in text and "gradio.live" in text
    assert "/face, /stop" in text and "20 MB" in text and "at most 8 waiting" in text


def test_the_cache_cleaner_deletes_old_files_but_the_kept_ones_while_runs_add_files(tmp_path) -> None:
    files = [tmp_path / f"{i:064x}" / "image.png" for i in range(200)]
    for file in files:
        file.parent.mkdir()
        file.write_bytes(b"png")
    cached, kept = {str(f) for f in files[1:100]}, type("Examples", (), {"keep_in_cache": {str(files[0])}})()
    blocks = type("Blocks", (), {"temp_file_sets": [cached], "blocks": {0: kept}, "GRADIO_CACHE": str(tmp_path)})()
    young = CacheCleaner(blocks, every=3600, age=3600)
    assert young.clean() == 0 and all(f.exists() for f in files)
    old = CacheCleaner(blocks, every=3600, age=-1)
    adding = threading.Thread(target=lambda: [cached.add(str(tmp_path / f"new{i}")) for i in range(20_000)])
    adding.start()
    assert (
        old.clean() == 199
    )  # tracked by Gradio's sets or not (a run's downloads are not); a set growing meanwhile stops nothing
    adding.join()
    assert files[0].exists() and not any(f.exists() for f in files[1:])
    young.stop(), old.stop()


@pytest.fixture(scope="module")
def small_app(world_path) -> Iterator[str]:  # noqa: F811
    demo = app.build_app(world_path, sd_model=None, queue_size=QUEUE)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        yield url
    finally:
        demo.close()


RUNNING = ("PROCESSING", "PROGRESS", "ITERATING")


def wait_for(job, codes: tuple[str, ...], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while job.status().code.name not in codes:
        assert time.monotonic() < deadline, f"still {job.status().code.name}, not {codes}"
        time.sleep(0.05)


def submit(client: Client) -> tuple[str, float, object]:
    """A 2-step run: "admitted" or the refusal's message, the seconds until it was known, and the job."""
    started = time.monotonic()
    job = client.submit(methods=["plain"], steps=2, api_name="/classes")
    while job.status().code.name not in ("IN_QUEUE", "PROCESSING", "FINISHED"):
        time.sleep(0.02)
    seconds = time.monotonic() - started
    if job.status().code.name == "FINISHED":
        with pytest.raises(ValidationError) as refusal:
            job.result(timeout=5)
        return str(refusal.value), seconds, job
    return "admitted", seconds, job


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


@pytest.mark.slow
def test_a_full_line_refuses_at_once_admits_in_order_and_every_admitted_run_finishes(small_app: str) -> None:
    holder = Client(small_app, verbose=False)
    holder.predict(methods=["plain"], steps=2, api_name="/classes")  # a finished run: Gradio's estimates have a time
    long_run = holder.submit(methods=["plain"], steps=999, api_name="/classes")
    wait_for(long_run, RUNNING)
    crowd = [Client(small_app, verbose=False) for _ in range(5)]
    with ThreadPoolExecutor(len(crowd)) as pool:
        outcomes = list(pool.map(submit, crowd))
    admitted = [i for i, (what, _, _) in enumerate(outcomes) if what == "admitted"]
    refused = [(what, seconds) for what, seconds, _ in outcomes if what != "admitted"]
    assert len(admitted) == QUEUE and len(refused) == len(crowd) - QUEUE
    for message, seconds in refused:
        assert "The queue is full: 2 runs are waiting behind the one running" in message and "try again" in message
        assert seconds < 1
    # while the line is full: the endpoints that do not sample answer at once
    assert timed(lambda: crowd[admitted[0]].predict(api_name="/stop")) < 1  # not running yet: nothing to stop
    assert (
        timed(lambda: crowd[0].predict(sweep_setting="scale", sweep_values="0.05, 0.1, 0.2", api_name="/face_sweep_command")) < 1
    )
    assert timed(lambda: httpx.get(f"{small_app}gradio_api/info", timeout=10).raise_for_status()) < 1
    # a visitor whose run waits cannot queue a second one, on any tab
    with pytest.raises(ValidationError, match="You already have a run waiting in the queue"):
        crowd[admitted[0]].submit(steps=2, api_name="/face").result(timeout=10)
    jobs = [outcomes[i][2] for i in admitted]
    assert sorted(job.status().rank for job in jobs) == [0, 1]  # each sees its place in the line, and an estimate
    assert all(job.status().eta is not None for job in jobs)
    holder.predict(api_name="/stop")
    assert long_run.result(timeout=60)[1]["plain"]["cancelled"]
    for job in jobs:
        summary = job.result(timeout=60)[1]
        assert not summary["plain"]["cancelled"] and summary["plain"]["steps"] == 2
    again = crowd[admitted[0]].predict(methods=["plain"], steps=2, api_name="/classes")  # the line has room again
    assert again[1]["plain"]["steps"] == 2
