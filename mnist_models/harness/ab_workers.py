"""The processes `mnist-bench ab` drives: where a side's code lives (Side) and one worker
process of it (Worker), which speaks the side's own ab contract (ab_side.py) or, for a side
whose code predates the contract, contract 0 (ab_legacy.py's text).

    side = Side.find("base", "../main")
    worker = Worker(side, threads=1)                          # hello: its contract and code
    worker.start(["train-mlp-cpu-bs64"], images={"train-mlp-cpu-bs64": 1024}, root=None)
    worker.round("train-mlp-cpu-bs64")                        # seconds
    worker.close()
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

SPOKEN = (0, 1)  # the contracts this driver speaks
CONTRACT_MODULE = "mnist_models.harness.ab_side"
LEGACY = Path(__file__).with_name("ab_legacy.py")  # contract 0, for sides without CONTRACT_MODULE
FIRST_IMAGES = {"train": 1024, "infer": 2048}  # contract 0 sizes a first round by operation
WAIT = {"hello": 600, "start": 900, "round": 300, "size": 60, "describe": 600, "finish": 600, "count": 3600}
# seconds for an answer, by message


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

    def contract(self) -> int:
        """The ab contract the side's code speaks: 0 where it has no contract module (its code
        predates it); UsageError, in one line, where it speaks none this driver knows or is no
        python with mnist_models at all."""
        probe = (
            "import importlib.util, sys\n"
            "if importlib.util.find_spec('mnist_models') is None: sys.exit(4)\n"
            f"if importlib.util.find_spec({CONTRACT_MODULE!r}) is None: print(0); sys.exit(0)\n"
            f"from {CONTRACT_MODULE} import CONTRACT\n"
            "print(CONTRACT)\n"
        )
        try:
            done = subprocess.run(
                [self.python, "-c", probe], cwd=self.cwd, env=self.env(1), capture_output=True, text=True, timeout=300
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UsageError(
                f"the {self.name} side's python ({self.python}) could not be run ({exc}); "
                "pass a checkout or a working environment"
            ) from None
        if done.returncode == 4:
            raise UsageError(
                f"the {self.name} side ({self.path}) has no mnist_models to import; "
                "pass a checkout or an environment where mnist-bench is installed"
            )
        said = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
        why = done.stderr.strip().splitlines()[-1:]
        if done.returncode != 0 and why and not why[0].startswith("ModuleNotFoundError"):
            # its mnist_models is there but breaks on import: the side's code failed, not the call
            raise RunError(f"the {self.name} side ({self.path}) failed: {why[0]}")
        if not said or not said[0].isdigit():
            raise UsageError(
                f"the {self.name} side's python ({self.python}) exited (code {done.returncode}) without answering: "
                f"not a Python that can import mnist_models{f' ({why[0]})' if why else ''}; pass a checkout, or "
                "an environment (its folder or its python) with mnist_models installed"
            )
        if int(said[0]) not in SPOKEN:
            raise UsageError(
                f"the {self.name} side ({self.path}) speaks ab contract {said[0]}, and this "
                f"mnist-bench speaks {', '.join(map(str, SPOKEN))}; run ab from the newer side's checkout"
            )
        return int(said[0])


def same_cpus(threads: int) -> set[int] | None:
    """The CPUs both sides are pinned to: the same ones, so that a vCPU slower than its
    sibling (a busy neighbour on its core) slows both sides alike. None where the OS has
    no affinity call (macOS)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    return set(allowed[-threads:]) if threads <= len(allowed) else set(allowed)


class Worker:
    """One worker process of a side: start() its cases, round() them, describe() what it
    timed, or count() instructions; each call one message and its one-line reply."""

    def __init__(
        self, side: Side, threads: int, prefix: list[str] | None = None, pin: bool = True, contract: int | None = None
    ):
        self.side, self.threads = side, threads
        self.contract = side.contract() if contract is None else contract
        cpus = same_cpus(threads) if pin else None
        self.log = tempfile.TemporaryFile(mode="w+")  # its stderr: a pipe nobody reads could fill and stall it

        def child() -> None:  # Ctrl-C reaches the whole group: the driver stops the workers, after
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # keeping the rounds they finished
            if cpus:
                os.sched_setaffinity(0, cpus)

        command = ["-m", CONTRACT_MODULE] if self.contract else ["-c", LEGACY.read_text()]
        self.proc = subprocess.Popen(
            [*(prefix or []), side.python, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=side.cwd,
            env=side.env(threads),
            preexec_fn=child,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both PIPEs, as asked
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.code = ""
        if self.contract:
            hello = self.ask(op="hello")
            if hello.get("contract") != self.contract:  # it changed under us: refuse, as plan() would have
                self.close()
                raise UsageError(
                    f"the {side.name} side ({side.path}) answered as contract {hello.get('contract')} "
                    f"after its code said {self.contract}; it changed during the run"
                )
            self.code = hello["code"]

    def start(self, cases: list[str], images: dict[str, int], root: str | None, label: str = "") -> dict:
        """Load MNIST and the cases, each cold-run once, with `images` a round per case."""
        if self.contract:
            return self.ask(op="start", cases=cases, threads=self.threads, images=images, root=root, label=label)
        reply = self.ask(op="start", cases=cases, threads=self.threads, images=FIRST_IMAGES, root=root, label=label)
        self.code = reply["code"]
        self.ask(op="size", images=images)
        return reply

    def round(self, case: str) -> float:
        return self.ask(op="round", case=case)["seconds"]

    def describe(self, rounds: dict[str, list[float]]) -> dict:
        """Each case's recorded figures for these rounds, and the machine's facts."""
        return self.ask(op="describe" if self.contract else "finish", rounds=rounds)

    def ask(self, **msg) -> dict:
        self.send(**msg)
        return self.reply(WAIT.get(msg["op"], WAIT["round"]))

    def send(self, **msg) -> None:
        try:
            self.stdin.write(json.dumps(msg) + "\n")
            self.stdin.flush()
        except BrokenPipeError:
            pass  # it died; reply() says how

    def reply(self, seconds: float = 3600) -> dict:
        """The worker's one-line answer; RunError naming the side if it failed or stayed silent
        for `seconds` (a hung side would otherwise hold CI until its own limit)."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.stdout, selectors.EVENT_READ)
            if not sel.select(seconds):
                self.close()
                raise RunError(
                    f"the {self.side.name} side ({self.side.path}) gave no answer in {seconds:.0f} s; "
                    "its code hung or is far slower than a round should be"
                )
        line = self.stdout.readline()
        reply = json.loads(line) if line.startswith("{") else None
        if reply is None or "error" in reply:
            self.close()
            why = (
                reply["error"]
                if reply
                else (self.stderr_tail() or f"it exited ({self.proc.returncode}) without answering")
            )
            raise RunError(f"the {self.side.name} side ({self.side.path}) failed: {why}")
        return reply

    def stderr_tail(self) -> str:
        self.log.seek(0)
        lines = [x for x in self.log.read().splitlines() if x.strip()]
        return lines[-1] if lines else ""

    def close(self) -> None:
        """Stop it (if it still runs) and close its pipes; its stderr stays readable."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.stdin, self.stdout):
            try:
                pipe.close()
            except OSError:  # a dead worker's unflushed stdin
                pass

    def __del__(self) -> None:
        self.log.close()
