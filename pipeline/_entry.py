"""The ``audioprep`` command's first moments: a Ctrl-C or a ``kill`` while Python imports the command line
(numpy, dask, ...: a second or more) ends it with one line, as it does later (:func:`pipeline.cli.handle_errors`).

Nothing heavy is imported before the handlers are in place: :mod:`pipeline` imports its API when first used.
"""

from __future__ import annotations

import signal
import sys


def _terminate(signum, frame):
    from .exceptions import Terminated

    raise Terminated()


def main() -> None:
    from .exceptions import Terminated

    signal.signal(signal.SIGTERM, _terminate)  # the command's own handling (handle_errors) takes over from here
    try:
        from .cli import main as cli_main
    except (KeyboardInterrupt, Terminated) as e:
        _interrupted(e)
    try:
        cli_main()
    except (KeyboardInterrupt, Terminated) as e:  # between the imports and the command's own handling
        _interrupted(e)


def _interrupted(e: BaseException) -> None:
    from .exceptions import Terminated

    sys.stderr.write("interrupted: nothing was started\n")
    quiet_exit(143 if isinstance(e, Terminated) else 130)


def quiet_exit(code: int) -> None:
    """Exit with ``code`` after an interruption's one line: what the interpreter's exit handlers meet then (a
    cluster the interruption caught half started, ``close_clusters``'s "Exception ignored in atexit callback")
    is not the user's news, so it is not printed."""
    sys.unraisablehook = lambda unraisable: None
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
