"""Stopping a run between two steps: one flag per session, registered while that session's run is going."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Stops:
    """A stop flag per session, registered while that session's run is going."""

    def __init__(self) -> None:
        self._events: dict[str | None, threading.Event] = {}
        self._lock = threading.Lock()

    @contextmanager
    def watch(self, session: str | None) -> Iterator[threading.Event]:
        """Register a fresh flag for the session's run for the duration of the block.

        Args:
            session: the caller's session (Gradio's session hash), or None.

        Yields:
            The flag, which `stop(session)` sets.
        """
        event = threading.Event()
        with self._lock:
            self._events[session] = event
        try:
            yield event
        finally:
            with self._lock:
                if self._events.get(session) is event:
                    del self._events[session]

    def stop(self, session: str | None) -> bool:
        """Sets the session's flag; False when it has no run going."""
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.set()
        return event is not None
