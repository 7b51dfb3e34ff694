"""Background tasks that are kept referenced until done and whose failures are logged."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("mediasrv.tasks")

_running: set[asyncio.Task[Any]] = set()


def spawn(
    coro: Coroutine[Any, Any, Any], name: str = "", *, detached: bool = False
) -> asyncio.Task[Any]:
    """A task kept until done, its failure logged. ``detached``: in a fresh context, so that it
    does not inherit the spawning connection's context variables (its log room and peer)."""
    if detached:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(
            coro, context=contextvars.Context()
        )
    else:
        task = asyncio.ensure_future(coro)
    _running.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        _running.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("background task %s failed", name or t.get_name(), exc_info=t.exception())

    task.add_done_callback(done)
    return task
