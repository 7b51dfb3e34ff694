"""Event emitters whose failing listeners are logged and counted, never propagated into media."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pyee import EventEmitter

log = logging.getLogger("mediasrv.events")


class ListenerErrors:
    """How many listeners raised, process-wide (exported as a metric)."""

    count = 0


def _report(exc: BaseException, event: str) -> None:
    ListenerErrors.count += 1
    log.error("listener for %r raised %s: %s", event, type(exc).__name__, exc, exc_info=exc)


class Emitter(EventEmitter):
    """A pyee EventEmitter: sync listeners run in order; coroutine listeners are scheduled."""

    def _emit_run(
        self, f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        event = getattr(f, "__qualname__", "?")
        try:
            result = f(*args, **kwargs)
        except Exception as exc:
            _report(exc, event)
            return
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(result)

            def done(t: asyncio.Future[Any]) -> None:
                if not t.cancelled() and t.exception() is not None:
                    exc = t.exception()
                    assert exc is not None
                    _report(exc, event)

            task.add_done_callback(done)
