"""The main job's progress, which a run of 10 to 17 minutes owes the person waiting: on a
terminal a bar with the case running, the cases done of all and the time left; elsewhere
(CI's log) one short line per finished case; under the tests and plain pytest, nothing.

    with watching(proc_env) as env:            # mnist-bench run: a pipe its pytest process writes to
        subprocess.Popen(cmd, env=env, pass_fds=...)

The cases' pytest process only says what happens (Events: collected, a case started, a
case finished), one JSON line each on the pipe the main job gave it (MNIST_BENCH_EVENTS);
the main job draws it on its own stderr, where pytest's output capture cannot swallow it.

The time left: the remaining cases' times on the reference machine (its result file has
every case's rounds and cold round), scaled by how this machine has kept up with it so far.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from .workload import VERSION

ENV = "MNIST_BENCH_EVENTS"  # the file descriptor a pytest process says its progress on
FALLBACK = 2.0  # seconds a case the reference never ran is guessed to take


class Events:
    """The cases' pytest process's side: one JSON line per event, where the main job listens."""

    def __init__(self):
        fd = os.environ.get(ENV, "")
        self.out = os.fdopen(int(fd), "w", buffering=1) if fd.isdigit() else None

    def say(self, event: str, **data) -> None:
        if self.out is not None:
            try:
                self.out.write(json.dumps({"event": event, **data}) + "\n")
            except OSError:  # the main job stopped listening: the run goes on
                self.out = None


@contextlib.contextmanager
def watching(env: dict) -> Iterator[tuple[dict, int]]:
    """The environment and the file descriptor to pass to the cases' pytest process; a thread
    draws what it says until the block ends."""
    read, write = os.pipe()
    thread = threading.Thread(target=_draw, args=(os.fdopen(read), choose()), daemon=True)
    thread.start()
    try:
        yield {**env, ENV: str(write)}, write
    finally:
        os.close(write)
        thread.join(timeout=5)


def _draw(events, show: str) -> None:
    progress = None
    for line in events:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event["event"] == "collected":
            progress = Progress(event["ids"], show)
        elif progress is not None and event["event"] == "start":
            progress.starting(event["case"])
        elif progress is not None and event["event"] == "done":
            progress.finished(event["case"], event["outcome"])
    if progress is not None:
        progress.close()


def choose(stream=sys.stderr) -> str:
    """What the main job asks for: a bar on a terminal, else a line a case."""
    return "bar" if stream.isatty() and os.environ.get("CI") is None else "lines"


def reference_seconds(ids: list[str]) -> dict[str, float]:
    """Each case's whole time (its cold round and timed rounds) on the reference machine, where
    it ran it; the others are guessed at FALLBACK."""
    from ..reporting.score import reference, reference_path  # noqa: PLC0415 (pandas: only where progress is shown)

    found = reference(VERSION) if reference_path(VERSION) is not None else reference(1)
    if found is None:
        return dict.fromkeys(ids, FALLBACK)
    frame = found[0].set_index("case")
    times = {c: float(frame.loc[c, "median"]) * (len(frame.loc[c, "data"]) + 1) for c in frame.index}
    return {i: times.get(i, FALLBACK) for i in ids}


@dataclass
class Progress:
    """The cases of one run, and how far it has come."""

    ids: list[str]
    show: str = "off"  # bar | lines | off
    expected: dict[str, float] = field(default_factory=dict)  # the reference's seconds a case
    done: list[str] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)
    bar: tqdm | None = None

    def __post_init__(self) -> None:
        if self.show == "off":
            return
        self.expected = reference_seconds(self.ids)
        if self.show == "bar":
            self.bar = tqdm(
                total=len(self.ids),
                unit="case",
                dynamic_ncols=True,
                file=sys.stderr,
                bar_format="{desc} {n_fmt}/{total_fmt} cases |{bar}| {elapsed}{postfix}",
            )

    def left(self) -> float | None:
        """Seconds left: the remaining cases at the pace this machine has kept against the reference."""
        spent = sum(self.expected[i] for i in self.done)
        if not spent:
            return None
        pace = (time.monotonic() - self.start) / spent
        return pace * sum(self.expected[i] for i in self.ids if i not in self.done)

    def starting(self, case: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(case)
            self.bar.refresh()

    def finished(self, case: str, outcome: str) -> None:
        if case not in self.ids or case in self.done:
            return
        self.done.append(case)
        left = self.left()
        eta = "time left unknown" if left is None else f"about {_clock(left)} left"
        if self.bar is not None:
            self.bar.set_postfix_str(eta)
            self.bar.update(1)
        elif self.show == "lines":
            print(
                f"mnist-bench: [{len(self.done)}/{len(self.ids)}] {case} {outcome} "
                f"({_clock(time.monotonic() - self.start)} in, {eta})",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
