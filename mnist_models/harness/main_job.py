"""The main job: the benchmark matrix on this machine into one result file, kept safe, then
the report over every result file beside it. What `mnist-bench run` and `bash bench.sh` do.

    mnist-bench run [LABEL] [pytest options...]      # -> results/LABEL.json, results/report/
    mnist-bench run laptop --quick                   # -> runs/quick/laptop.json, runs/quick/report/

LABEL (default: the hostname) names the file; an existing one is kept unless `force`. The
cases run in a pytest process of their own; stopped early (Ctrl-C, a failed case, a crash
or a kill), the cases that finished go to runs/partial/LABEL.json and a line says so.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, Terminated, UsageError
from ..files import check_writable, default_mode, one_writer
from ..parsing import label_problem
from . import progress

SUITE = "mnist_models.harness.suite"
# pytest options after which no result file, or one compare cannot read, would come out
NO_RESULT = {
    "-n": "parallel workers share the cores the cases measure",
    "--numprocesses": "parallel workers share the cores the cases measure",
    "--collect-only": "it runs no case",
    "--co": "it runs no case",
    "--benchmark-skip": "it skips every case",
    "--benchmark-disable": "it times no round",
    "--benchmark-json": "the main job names the result file itself (LABEL)",
    "--count": "it repeats cases under one id, which compare cannot tell apart",
}


@dataclass(frozen=True)
class MainJob:
    """The main job's choices."""

    label: str = field(default_factory=socket.gethostname)  # names results/LABEL.json
    pytest_args: tuple[str, ...] = ()  # passed to the cases' pytest run (--quick, --devices, -k ...)
    force: bool = False  # replace an existing result file
    root: Path = Path(".")  # where results/ and runs/ are

    @property
    def quick(self) -> bool:
        return "--quick" in self.pytest_args

    @property
    def folder(self) -> Path:
        return self.root / ("runs/quick" if self.quick else "results")

    @property
    def out(self) -> Path:
        return self.folder / f"{self.label}.json"

    @property
    def partial(self) -> Path:
        return self.root / "runs" / "partial" / f"{self.label}.json"


def check(job: MainJob) -> None:
    """UsageError for a job that could not end in a good result file: before any case runs."""
    why = label_problem(job.label)
    if why:
        raise UsageError(f"LABEL {why}")
    for arg in job.pytest_args:
        flag = arg.split("=", 1)[0]
        if flag in NO_RESULT or (flag.startswith("-n") and flag[2:].isdigit()):
            raise UsageError(f"{arg}: not with the main job, since {NO_RESULT.get(flag, NO_RESULT['-n'])}; drop it")
    if os.path.lexists(job.out) and not job.force:
        raise UsageError(f"{job.out} already exists; pass another LABEL or --force (FORCE=1 for bench.sh) to overwrite")
    report = job.folder / "report"
    if report.is_symlink() or (os.path.lexists(report) and not report.is_dir()):
        raise UsageError(
            f"{report} is {'a symbolic link' if report.is_symlink() else 'a file'}, where the "
            "report's folder goes; move it aside"
        )
    for folder in (job.folder, job.partial.parent):  # both writable before an hour of work, not after
        check_writable(folder, [], force=True, option="folder (run from a writable checkout)")


NEEDED = ("torch", "torchvision", "pytest_benchmark", "pandas", "matplotlib")  # what the cases' run imports


def check_ready(job: MainJob) -> None:
    """UsageError, in one line, for what the cases' pytest run would stumble on before its
    first case: a dependency that is not installed, or MNIST not found (and not downloadable)."""
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed in this Python "
            f"({sys.executable}); install mnist-bench with its dependencies (pip install -e '.[dev]'), "
            "or run bash bench.sh, which makes .venv with them"
        )
    from ..core.data import ensure_mnist  # noqa: PLC0415 (torch: once it is found installed)

    ensure_mnist()  # DatasetError (a UsageError) naming MNIST_ROOT, before pytest starts


# pytest-benchmark's options that use its storage folder: asked for, it stays where it is
STORAGE = ("--benchmark-storage", "--benchmark-save", "--benchmark-autosave", "--benchmark-compare")


def run_cases(job: MainJob, target: Path, refused: list[str] | None = None) -> int:
    """The cases' pytest process, writing `target`; pytest's exit code (130 for Ctrl-C, 143 for
    SIGTERM, which is passed on to pytest as Ctrl-C so that it stops at a case's end). Its
    stderr passes through, and its own error lines are added to `refused`. pytest-benchmark
    makes its storage folder even when it saves nothing: unless asked for, it goes to a
    temporary folder, not to .benchmarks/ in the folder the job runs from."""
    storage = tempfile.TemporaryDirectory(prefix="mnist-bench-storage-")
    asked = any(arg.split("=", 1)[0] in STORAGE for arg in job.pytest_args)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        SUITE,
        "-rs",
        "-p",
        "no:cacheprovider",
        "--machine-label",
        job.label,
        "--benchmark-json",
        str(target),
        *([] if asked else ["--benchmark-storage", f"file://{storage.name}"]),
        *job.pytest_args,
    ]
    with progress.watching(dict(os.environ)) as (env, fd):
        proc = subprocess.Popen(cmd, env=env, pass_fds=(fd,), stderr=subprocess.PIPE, text=True, errors="replace")
        tee = threading.Thread(target=_tee, args=(proc.stderr, [] if refused is None else refused), daemon=True)
        tee.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt as stop:  # Ctrl-C reached both; SIGTERM (CI's cancel) only this process
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait()
            return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
        finally:
            tee.join(timeout=10)
            storage.cleanup()
    if code < 0:  # killed by a signal: the shell's convention
        return 128 - code
    return code


PYTEST_ERROR = re.compile(r"^(?:.*?: error: |ERROR: (?!usage:))(.+)$")  # argparse's line, or pytest's own


def _tee(stream, refused: list[str]) -> None:
    """Each line of pytest's stderr to ours as it comes, its error lines also into `refused`."""
    for line in stream:
        sys.stderr.write(line)
        sys.stderr.flush()
        match = PYTEST_ERROR.match(line.strip())
        if match:
            refused.append(match.group(1))


# pytest's codes in the suite's terms: 1 a case failed stays 1 (never anything else), 2
# interrupted is 130, 4 a usage error and 5 no case selected are bad input (2), 3 stays 3
EXIT = {2: EXIT_INTERRUPTED, 4: EXIT_USAGE, 5: EXIT_USAGE}
NOTHING_RAN = {
    4: "pytest refused an option: {refused}; no case ran",
    5: "no case was selected: -k, --devices, --models, --batch-sizes and --precisions left none; widen them",
}


def keep_finished(
    job: MainJob, target: Path, pytest_code: int, say: Callable[[str], None], refused: Sequence[str] = ()
) -> int:
    """After a run that stopped early: the finished cases into runs/partial/LABEL.json
    (`refused`: pytest's own error lines, the first quoted where it refused an option)."""
    code = EXIT.get(pytest_code, pytest_code)
    if pytest_code in NOTHING_RAN:
        why = refused[0] if refused else "its lines above say which"
        say(f"mnist-bench: {NOTHING_RAN[pytest_code].format(refused=why)} (exit {code})")
        return code
    for made in (target, target.with_name(target.name + ".partial")):  # pytest-benchmark's, else the per-case copy
        if made.exists() and made.stat().st_size > 0:
            os.replace(made, job.partial)
            say(f"mnist-bench: stopped (exit {code}); the cases that finished are in {job.partial}")
            return code
    say(f"mnist-bench: stopped (exit {code}) before any case finished; nothing kept")
    return code


def main_job(job: MainJob, say: Callable[[str], None] = print) -> int:
    """The matrix into job.out, then the report over every result file in its folder; one
    run at a time per result file (a second one is refused, naming the first's PID)."""
    with one_writer(job.out, option="LABEL"):
        return _main_job(job, say)


def _main_job(job: MainJob, say: Callable[[str], None]) -> int:
    check(job)
    check_ready(job)
    job.folder.mkdir(parents=True, exist_ok=True)
    job.partial.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=job.folder, prefix=f".{job.label}.", suffix=".json")  # unique per run
    os.close(fd)
    target = Path(name)
    start = time.monotonic()
    refused: list[str] = []
    try:
        code = run_cases(job, target, refused)
        if code != EXIT_OK:
            return keep_finished(job, target, code, lambda line: print(line, file=sys.stderr), refused)
        os.chmod(target, default_mode())  # as open() would have made it, not mkstemp's 0600
        os.replace(target, job.out)
    finally:
        for left in (target, target.with_name(target.name + ".partial")):
            left.unlink(missing_ok=True)
        for stale in job.folder.glob(f".{target.name}.partial.*.tmp"):  # a copy a kill cut off mid-write
            stale.unlink(missing_ok=True)
    say(f"mnist-bench: wrote {job.out} in {time.monotonic() - start:.0f} s")
    return report(job, say)


def report(job: MainJob, say: Callable[[str], None]) -> int:
    """The report over every result file in the job's folder (never a tracked doc: README's
    leaderboard is `mnist-bench docs`'s)."""
    from ..reporting.report import write_report  # noqa: PLC0415 (pandas: once it is found installed)
    from ..reporting.results import load_results  # noqa: PLC0415 (pandas: once it is found installed)

    results = load_results(sorted(job.folder.glob("*.json")))
    for line in results.problems + results.notes:
        print(f"mnist-bench: warning: {line}", file=sys.stderr)
    with one_writer(job.folder / "report"):
        for path in write_report(results, job.folder / "report", force=True):
            say(f"wrote {path}")
    return EXIT_OK
