"""A run's scalars from its TensorBoard event files, as TensorBoard's EventAccumulator keeps them
(`size_guidance={SCALARS: 0}`: every point), without the checksums of the preview grids' records.

An event file is a row of records: a uint64 length, the masked CRC32C of those 8 bytes, the data
(an `Event` proto) and the masked CRC32C of the data. TensorBoard's reader checks every byte's
CRC32C in pure Python where TensorFlow is not installed, and the grids are nearly all of a run's
event file: 10,000 steps (32.6 MB, 30.6 MB of it 200 grids) took 3.9 s to read, 0.2 s without
them; a 200k-step DCGAN-128 run, 113 s. Here every length is checked (8 bytes), and the data of
every record but those that hold images alone (nothing in them is a scalar): a record that fails
its check ends the reading of its file, as in TensorBoard, and is named by `run_scalars`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Points = dict[str, list[tuple[int, float]]]  # tag -> (step, value), in the order read


def run_scalars(run_dir: Path) -> tuple[Points, dict[Path, str]]:
    """The scalars of the run's event files, by tag in the order first met, and {event file: what is
    wrong} for each file damaged mid-way (its scalars from there on are not read). A file cut short
    at its end (a run killed, or still writing) loses nothing that is there, and is not named."""
    scalars, damaged = _Scalars(), {}
    for path in event_files(run_dir):
        events = EventFile(path)
        for event in events:
            scalars.add(event)
        if events.damage:
            damaged[path] = events.damage
    return scalars.points, damaged


def event_files(run_dir: Path) -> list[Path]:
    """The run's event files in the order TensorBoard reads them: by name (a resume's file last). Hidden
    names are not theirs (macOS's `._events.out.tfevents.*` beside each, copied to exFAT or a share)."""
    return [run_dir / name for name in sorted(os.listdir(run_dir))
            if "tfevents" in name and not name.endswith(".profile-empty") and not name.startswith(".")]


class EventFile:
    """The events of one event file, up to its end, a record cut short, or a damaged record
    (`damage` then says which check it failed, in TensorBoard's words)."""

    def __init__(self, path: Path):
        self.path = path
        self.damage: str | None = None

    def __iter__(self) -> Iterator[Any]:
        from google.protobuf.message import DecodeError
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.tensorflow_stub import pywrap_tensorflow

        masked_crc32c = pywrap_tensorflow.masked_crc32c  # (TensorBoard's own, looked up at each read: a test counts)
        with open(self.path, "rb") as handle:
            while True:
                header = handle.read(12)
                if len(header) < 12:  # (the end, or a record cut short)
                    return
                if masked_crc32c(header[:8]) != int.from_bytes(header[8:], "little"):
                    self.damage = "failed header crc32 check"
                    return
                length = int.from_bytes(header[:8], "little")
                data, data_crc = handle.read(length), handle.read(4)
                if len(data) < length or len(data_crc) < 4:
                    return
                try:
                    event = Event.FromString(data)
                except DecodeError:  # (damaged, most often: the checksum tells)
                    event = None
                if (event is None or not holds_images_alone(event)) and \
                        masked_crc32c(data) != int.from_bytes(data_crc, "little"):
                    self.damage = "failed event crc32 check"
                    return
                yield Event.FromString(data) if event is None else event  # (intact, yet no Event: its error)


def holds_images_alone(event: Any) -> bool:
    """Whether an Event is a summary of images and nothing else (a preview grid's record): no scalar
    in it, nor a file version or restart that purges scalars."""
    values = event.summary.value if event.WhichOneof("what") == "summary" else ()
    return len(values) > 0 and all(value.WhichOneof("value") == "image" for value in values)


class _Scalars:
    """What EventAccumulator keeps of the scalars, event by event, with its purges of the points a
    restarted writer abandoned: under file version 2 (every writer since TensorFlow 1.0; a resume's
    SummaryWriter writes its purge_step so), those at or after a SessionLog.START's step; in older
    files, those of a summary's tags at or after its step, when it steps back."""

    def __init__(self):
        self.points: Points = {}
        self.file_version: float | None = None
        self.latest_step = -1

    def add(self, event: Any) -> None:
        if event.HasField("file_version"):
            self.file_version = _version(event.file_version)
        self._purge_abandoned(event)
        if event.HasField("summary"):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    self.points.setdefault(value.tag, []).append((event.step, value.simple_value))

    def _purge_abandoned(self, event: Any) -> None:
        from tensorboard.compat.proto.event_pb2 import SessionLog

        if self.file_version and self.file_version >= 2:
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                self._keep_before(event.step, list(self.points))
        elif event.step < self.latest_step and event.HasField("summary"):
            for value in event.summary.value:  # (a value without a tag: every tag, as TensorBoard's reservoirs do)
                self._keep_before(event.step, [value.tag] if value.tag else list(self.points))
        else:
            self.latest_step = event.step

    def _keep_before(self, step: int, tags: list[str]) -> None:
        for tag in tags:
            if tag in self.points:  # (a tag purged of every point stays, empty)
                self.points[tag] = [point for point in self.points[tag] if point[0] < step]


def _version(file_version: str) -> float:
    """An Event's `brain.Event:2` as 2.0; -1 for one that is no number (TensorBoard's reading)."""
    try:
        return float(file_version.split("brain.Event:")[-1])
    except ValueError:
        return -1
