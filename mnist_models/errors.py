"""The errors every layer raises and the exit code each becomes (README, "Exit codes").

    raise UsageError("batch size must be at least 1 (got 0)")   # exit 2, one line
    raise RunError("rank 1 failed: ...")                          # exit 3, one line

Nothing of the package imported: every module may use it.
"""

import signal

EXIT_OK = 0  # done; for compare, no comparable case is slower
EXIT_REGRESSION = 1  # compare and ab only: a case regressed
EXIT_USAGE = 2  # bad input or usage, or a training run that diverged
EXIT_ERROR = 3  # anything else: a full disk, a failed rank, a bug
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM, how CI cancels a job (128 + 15)


class UsageError(ValueError):
    """Something the user asked for cannot be done as asked: exit 2, one line naming the fix."""


class RunError(RuntimeError):
    """The work failed for a reason its message names (a rank that died): exit 3, one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: finished work is kept the same way, exit 143."""


def _terminated(signum, frame):
    raise Terminated()


def sigterm_as_interrupt() -> None:
    """From now on SIGTERM stops this process as Ctrl-C does (raising Terminated)."""
    signal.signal(signal.SIGTERM, _terminated)
