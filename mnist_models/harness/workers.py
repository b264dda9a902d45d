"""The processes `mnist-bench ab` drives: where a side's code lives (Side) and its
long-lived worker (Worker), which runs ab_worker.py's text in the side's interpreter and
answers one JSON line per message.

    side = Side.find("base", "../main")
    worker = Worker(side, threads=1)
    worker.ask(op="start", cases=["train-mlp-cpu-bs64"], threads=1, label="base", root=None,
               images={"train": 1024, "infer": 2048})
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunError, UsageError

WORKER = Path(__file__).with_name("ab_worker.py")
WAIT = {"start": 900, "round": 300, "size": 60, "finish": 600, "count": 3600}  # seconds for an answer, by message


@dataclass(frozen=True)
class Side:
    """Where one version's code lives and how to start a python that imports it."""

    name: str  # base | new
    path: str  # what the user passed
    python: str  # the interpreter to run
    pythonpath: str | None  # a checkout's root, first on sys.path; None for an installed environment

    @classmethod
    def find(cls, name: str, path: str) -> Side:
        p = Path(path)
        if (p / "mnist_models" / "__init__.py").is_file():
            return cls(name, path, sys.executable, str(p.resolve()))
        for python in (p / "bin" / "python", p / "Scripts" / "python.exe", p):
            if python.is_file() and os.access(python, os.X_OK):
                return cls(name, path, str(python), None)
        raise UsageError(
            f"{name} side {path!r} is neither a checkout (a folder holding mnist_models/) "
            "nor an installed environment (a venv folder or its python); pass one of those"
        )

    def env(self, threads: int) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONDONTWRITEBYTECODE="1")
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        return env

    @property
    def cwd(self) -> str:
        return self.pythonpath or tempfile.gettempdir()  # no stray mnist_models beside an installed one


def _how(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"code {code}"


def same_cpus(threads: int) -> set[int] | None:
    """The CPUs both sides are pinned to: the same ones, so that a vCPU slower than its
    sibling (a busy neighbour on its core) slows both sides alike. None where the OS has
    no affinity call (macOS)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return set(allowed[-threads:]) if threads <= len(allowed) else set(allowed)


class Worker:
    """One side's worker process: ask() sends a message and waits for its one-line reply."""

    def __init__(self, side: Side, threads: int, prefix: list[str] | None = None, pin: bool = True):
        self.side = side
        self.waiting = 0  # messages sent whose answer is not read yet
        cpus = same_cpus(threads) if pin else None
        self.log = tempfile.TemporaryFile(mode="w+")  # its stderr: a pipe nobody reads could fill and stall it

        def child() -> None:  # Ctrl-C reaches the whole group: the driver stops the workers, after
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # keeping the rounds they finished
            if cpus:
                os.sched_setaffinity(0, cpus)

        self.proc = subprocess.Popen(
            [*(prefix or []), side.python, "-c", WORKER.read_text()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=side.cwd,
            env=side.env(threads),
            preexec_fn=child,
        )

    def ask(self, **msg) -> dict:
        self.send(**msg)
        return self.reply(WAIT.get(msg["op"], WAIT["round"]))

    def send(self, **msg) -> None:
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
            self.waiting += 1
        except BrokenPipeError:
            pass  # it died; reply() says how

    def reply(self, seconds: float = 3600) -> dict:
        """The worker's one-line answer; RunError naming the side if it failed or stayed silent
        for `seconds` (a hung side would otherwise hold CI until its own limit)."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(seconds):
                self.close()
                raise RunError(
                    f"the {self.side.name} side ({self.side.path}) gave no answer in {seconds:.0f} s; "
                    "its code hung or is far slower than a round should be"
                )
        line = self.proc.stdout.readline()
        self.waiting = max(0, self.waiting - 1)
        reply = json.loads(line) if line.startswith("{") else None
        if reply is None or "error" in reply:
            self.close()
            code, said = self.proc.returncode, self.stderr_tail()
            if reply is None and not said and code >= 0:  # any python running the worker answers, or says why
                raise UsageError(
                    f"the {self.side.name} side's python ({self.side.python}) exited (code {code}) without "
                    "answering: not a Python that can import mnist_models; pass a checkout, or an "
                    "environment (its folder or its python) with mnist_models installed"
                )
            why = reply["error"] if reply else (said or f"its python exited ({_how(code)}) without answering")
            raise RunError(f"the {self.side.name} side ({self.side.path}) failed: {why}")
        return reply

    def drain(self) -> None:
        """Read and drop the answers to messages sent before a stop (a round under way), so
        that the next message's answer is its own."""
        while self.waiting:
            self.reply(WAIT["round"])

    def stderr_tail(self) -> str:
        self.log.seek(0)
        lines = [x for x in self.log.read().splitlines() if x.strip()]
        return lines[-1] if lines else ""

    def close(self) -> None:
        """Stop it (if it still runs) and close its pipes; its stderr stays readable."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:  # a dead worker's unflushed stdin
                pass

    def __del__(self) -> None:
        self.log.close()
