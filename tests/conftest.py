"""Shared fixtures. Async tests run on both uvloop and the standard asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

T = TypeVar("T")
FIXTURES = Path(__file__).parent / "fixtures"

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}

Run = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Run a coroutine to completion on a fresh loop of the parametrized kind."""
    with asyncio.Runner(loop_factory=LOOP_FACTORIES[request.param]) as runner:
        yield runner.run


def fixture_bytes(name: str) -> bytes:
    """The bytes of a binary fixture in tests/fixtures."""
    return (FIXTURES / name).read_bytes()
