"""A crowd on one sampling slot: a bounded line of runs, one run per visitor, and refusals that say when to come back.

Gradio's queue (`Blocks.queue(max_size=...)`) holds the line, runs one sampling event at a time and shows each
admitted visitor their place and an estimate of the wait. When it is full it answers with a fixed text ("This
application is currently busy"). `Admissions` decides first: the app's sampling events name `admit` as their
`validator`, which Gradio calls when an event asks to join the queue, before it is queued. A visitor who already
holds a run (queued or running), or who comes to a full line, is refused at once with a message that says why and
when to try again; Gradio's max_size stays above the line (`gradio_max_size`) as the backstop.

A visitor is a Gradio session (gr.Request.session_hash): one browser tab, or one gradio_client.Client.
"""

from __future__ import annotations

import itertools
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

DEFAULT_QUEUE_SIZE = 8  # runs waiting behind the one running: 8 default Face runs (~4 s each on 2 CPU cores) wait ~35 s
STALE_SECONDS = 30 * 60  # a run admitted this long ago that never started was dropped by Gradio (its visitor left)
RECENT_RUNS = 20  # the runs whose durations estimate the next one's
RESERVE = 16  # Gradio's queue holds this many more events than the line: calls that do not sample, from API clients
ANONYMOUS = "call without a session "  # the key of a place taken by a call without a session


@dataclass
class Held:
    """A visitor's run: "waiting" in the queue or "running", since `since` (the clock's seconds)."""

    state: str
    since: float


class Admissions:
    """Who holds a run, and whether a new one may join the line.

    Args:
        size: the most runs that wait behind the one running (the app's --queue-size).
        clock: seconds, monotonic (a test's clock in tests).
    """

    def __init__(self, size: int = DEFAULT_QUEUE_SIZE, clock: Callable[[], float] = time.monotonic):
        if size < 1:
            raise ValueError(f"the queue holds at least 1 run, got {size}")
        self.size, self.clock = size, clock
        self._held: dict[str, Held] = {}
        self._seconds: deque[float] = deque(maxlen=RECENT_RUNS)
        self._lock = threading.Lock()
        self._anonymous = itertools.count()

    @property
    def gradio_max_size(self) -> int:
        """Gradio's queue bound, the backstop: the line, plus RESERVE places for the calls that do not sample, which
        gradio_client sends through the queue too (a browser sends them past it), so that `admit` refuses first,
        readably, and /stop from an API client is not refused."""
        return self.size + RESERVE

    def waiting(self) -> int:
        """How many admitted runs have not started."""
        with self._lock:
            return sum(held.state == "waiting" for held in self._held.values())

    def line(self) -> str:
        """The line as a visitor arriving reads it: how many runs wait, of how many places, and the wait."""
        waiting, seconds = self.waiting(), self.run_seconds()
        wait = f", about {max(1, math.ceil((waiting + 1) * seconds))} s to wait" if waiting and seconds is not None else ""
        return f"**queue:** {waiting} of {self.size} places taken{wait}"

    def run_seconds(self) -> float | None:
        """The median duration of the recent runs; None before the first has finished."""
        with self._lock:
            return statistics.median(self._seconds) if self._seconds else None

    def admit(self, session: str | None) -> str | None:
        """Lets a run join the line, or says why not.

        Args:
            session: the visitor's session (gr.Request.session_hash); None for a call without one (the REST API's
                /call/...): it counts in the line, and its run, which Gradio gives a session of its own, takes the
                oldest such place when it starts.

        Returns:
            None: admitted (the session now holds a waiting run). Otherwise the refusal, to show the visitor.
        """
        with self._lock:
            now = self.clock()
            for key in [k for k, held in self._held.items() if held.state == "waiting" and now - held.since > STALE_SECONDS]:
                del self._held[key]
            if session in self._held:
                state = "waiting in the queue" if self._held[session].state == "waiting" else "running"
                return (
                    f"You already have a run {state}: one run at a time per visitor. Wait for its results, or press "
                    "Stop, then start this one."
                )
            waiting = sum(held.state == "waiting" for held in self._held.values())
            if waiting >= self.size:
                return self._full(waiting)
            self._held[session if session is not None else f"{ANONYMOUS}{next(self._anonymous)}"] = Held("waiting", now)
            return None

    def _full(self, waiting: int) -> str:
        """The refusal at a full line: how full, and when a place frees up (one run's time, from the recent runs)."""
        seconds = statistics.median(self._seconds) if self._seconds else None
        when = "in a minute" if seconds is None else f"in about {max(1, math.ceil(seconds))} s (one run's time here)"
        runs = "1 run is" if waiting == 1 else f"{waiting} runs are"
        return f"The queue is full: {runs} waiting behind the one running. A place frees up as each run ends: try again {when}."

    @contextmanager
    def running(self, session: str | None) -> Iterator[None]:
        """Marks the session's run as running for the block, and forgets it after, timing it.

        Args:
            session: the visitor's session; None (the app's own example runs, which join no line) is not tracked.
        """
        start = self.clock()
        if session is not None:
            with self._lock:
                anonymous = [key for key, held in self._held.items() if key.startswith(ANONYMOUS) and held.state == "waiting"]
                if session not in self._held and anonymous:  # a call admitted without a session
                    del self._held[min(anonymous, key=lambda key: self._held[key].since)]
                self._held[session] = Held("running", start)
        try:
            yield
        finally:
            with self._lock:
                self._seconds.append(self.clock() - start)
                if session is not None:
                    self._held.pop(session, None)

    def release(self, session: str | None) -> None:
        """Forgets the session's run (its visitor left; Gradio drops a waiting event of a closed session)."""
        with self._lock:
            self._held.pop(session, None)


def exposure(host: str, port: int, share: bool, endpoints: list[str], queue_size: int, max_upload_bytes: int) -> str:
    """What the app serves to anyone who reaches it: printed at start-up on a public address or with a share link.

    Args:
        host: the address it listens on.
        port: its port.
        share: whether a public gradio.live link forwards to it.
        endpoints: its API endpoints (every tab's run, sweep and sweep command, /stop).
        queue_size: the most runs waiting behind the one running.
        max_upload_bytes: the largest upload accepted.

    Returns:
        The notice, several lines.
    """
    where = [f"every address of this machine, port {port}" if host in ("0.0.0.0", "::") else f"{host}:{port}"]
    where += ["the public gradio.live link printed below"] if share else []
    return "\n".join(
        [
            f"Exposed to anyone who can reach {' and '.join(where)}:",
            f"  the page and its API (gradio_client, /gradio_api/info): {', '.join(endpoints)}",
            f"  uploads of images up to {max_upload_bytes // 2**20} MB, kept in Gradio's cache, deleted after an hour",
            f"  this machine's CPU or GPU: one run at a time, at most {queue_size} waiting, one per visitor; no login",
        ]
    )
