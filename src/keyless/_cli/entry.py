"""The ``keyless`` console script: Ctrl-C at any moment of start-up is one line and exit 130.

The command line's own modules take a few hundred milliseconds to import, and a
``KeyboardInterrupt`` raised while they import would escape :func:`keyless._cli.main.main`'s
handling (a traceback, and an exit status that is not 130). So this module, which is imported
only as the entry point, first installs a SIGINT handler that ends the process at once — there
is nothing to clean up before the command has started — and hands SIGINT back to Python's
``KeyboardInterrupt`` only when ``main`` is about to run, whose handling then applies.

(A SIGINT that arrives while the interpreter itself starts, before this module's first line,
is CPython's: it ends the process without running any keyless code.)
"""

# ``_signal`` and ``os`` are loaded with the interpreter: importing them reads no file, so the
# handler is in place before the first module that takes time (``signal`` itself imports enum).
import _signal  # type: ignore[import-not-found]  # CPython's C module under ``signal``
import os
import sys


def _interrupted_while_starting(signum: int, frame: object) -> None:
    os.write(2, b"keyless: interrupted\n")
    os._exit(130)


_signal.signal(_signal.SIGINT, _interrupted_while_starting)


def main() -> int:
    """Import the command line, then run it with Ctrl-C as ``KeyboardInterrupt``."""
    import signal

    from keyless._cli.main import main as run

    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return run(sys.argv[1:])
    except KeyboardInterrupt:  # between the two lines above, before run's own handling
        print("keyless: interrupted", file=sys.stderr)
        return 130
