"""What a post-processing run tells its caller: warnings, damage, and the error it stops on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class RecordingError(Exception):
    """Input that cannot be post-processed (bad usage, unreadable journal, nothing to write);
    the message says what and where."""


@dataclass(slots=True)
class Report:
    """The outcome of a run that wrote its output."""

    output: Path
    warnings: list[str] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)
    """One message per damaged journal: where reading it stopped and why."""
    streams: dict[str, int] = field(default_factory=dict)
    """Frames written per output stream ("video", "audio")."""
    duration: float = 0.0
    """Seconds from the first to the end of the last frame written."""
