"""Children that Ctrl-C can reach, however the suite itself was started.

subprocess.Popen(cmd, preexec_fn=as_at_a_terminal)
"""

import signal


def as_at_a_terminal() -> None:
    """A child's SIGINT at its default, as a shell at a terminal starts a job. A suite started
    in the background of a script (`pytest &`) ignores SIGINT, every child inherits that, and
    Python then installs no KeyboardInterrupt: a test of Ctrl-C would see nothing happen."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
