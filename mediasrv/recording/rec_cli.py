"""``mediasrv-rec``: recording journals to a playable file.

    mediasrv-rec JOURNAL... -o OUT            one participant: a video and/or an audio journal
    mediasrv-rec --room RECORDING_DIR -o OUT  a room: every participant, tiled and mixed

Exit status: 0 written; 1 written, but a journal was damaged (read up to the damage, which is
described); 2 nothing written: bad usage or unreadable input (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

import av

from mediasrv.recording.compose import DEFAULT_FPS, DEFAULT_TILE, compose_room
from mediasrv.recording.postprocess import remux
from mediasrv.recording.progress import Progress
from mediasrv.recording.report import RecordingError, Report

PROG = "mediasrv-rec"
EXIT_OK, EXIT_DAMAGED, EXIT_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _tile(value: str) -> tuple[int, int]:
    width, sep, height = value.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not WIDTHxHEIGHT") from None
    if not sep or min(size) < 16 or max(size) > 4096 or size[0] % 2 or size[1] % 2:
        raise argparse.ArgumentTypeError(f"{value!r}: even sizes from 16 to 4096 please")
    return size


def _fps(value: str) -> int:
    try:
        fps = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= fps <= 60:
        raise argparse.ArgumentTypeError(f"{fps} frames per second: from 1 to 60 please")
    return fps


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Turn mediasrv recording journals into a WebM, Matroska or MP4 file.",
        epilog=(
            "Exit status: 0 written; 1 written but a journal was damaged (read up to the "
            "damage); 2 nothing written (bad usage or unreadable input)."
        ),
    )
    parser.add_argument(
        "journals",
        nargs="*",
        type=Path,
        metavar="JOURNAL",
        help="one participant's journals (.msrec): at most one video and one audio",
    )
    parser.add_argument(
        "--room",
        type=Path,
        metavar="RECORDING_DIR",
        help="compose a whole room recording (a directory with recording.json and journals)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUT",
        help="output file; the format follows the extension: .webm, .mkv or .mp4",
    )
    parser.add_argument(
        "--audio-codec",
        choices=("opus", "aac"),
        default=None,
        help="one participant: opus is copied (default); aac transcodes the audio only",
    )
    parser.add_argument(
        "--fps",
        type=_fps,
        default=DEFAULT_FPS,
        help=f"room: output frame rate (default {DEFAULT_FPS})",
    )
    parser.add_argument(
        "--tile",
        type=_tile,
        default=DEFAULT_TILE,
        metavar="WxH",
        help=f"room: size of one participant's tile (default {DEFAULT_TILE[0]}x{DEFAULT_TILE[1]})",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print errors and damage only, no warnings"
    )
    return parser


def _print_report(report: Report, *, quiet: bool, out: TextIO) -> None:
    if not quiet:
        for warning in report.warnings:
            print(f"{PROG}: warning: {warning}", file=out)
    for damage in report.damage:
        print(f"{PROG}: damaged journal: {damage}", file=out)
    streams = ", ".join(f"{count} {kind} frames" for kind, count in report.streams.items())
    if not quiet:
        print(f"{PROG}: wrote {report.output} ({report.duration:.1f} s: {streams})", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.room is not None and args.journals:
            parser.error("give either journals or --room, not both")
        if args.room is None and not args.journals:
            parser.error("give the journals of one participant, or --room RECORDING_DIR")
        if args.room is not None and args.audio_codec is not None:
            parser.error("--audio-codec is for one participant; a room's audio follows the format")
        if args.output.resolve() in {path.resolve() for path in args.journals}:
            parser.error(f"the output {args.output} is one of the journals")
    except SystemExit as exc:  # usage errors (status 2) and --help (status 0)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = Progress(1, "", enabled=show)
    try:
        if args.room is not None:
            report = compose_room(
                args.room, args.output, fps=args.fps, tile=args.tile, progress=progress
            )
        else:
            report = remux(
                args.journals, args.output, audio_codec=args.audio_codec, progress=progress
            )
    except RecordingError as exc:
        progress.close()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, av.FFmpegError) as exc:
        progress.close()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        progress.close()
    _print_report(report, quiet=args.quiet, out=sys.stderr)
    return EXIT_DAMAGED if report.damage else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
