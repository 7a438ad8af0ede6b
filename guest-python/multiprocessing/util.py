"""multiprocessing.util for wmp guests: what a process does at its end
(CPython's `_exit_function`: terminate daemonic children, join the
others), the standard streams, and the package's logger."""

import io
import logging
import sys

__all__ = ["get_logger", "log_to_stderr"]

LOGGER_NAME = "multiprocessing"
DEFAULT_LOGGING_FORMAT = "[%(levelname)s/%(processName)s] %(message)s"

_logger = None
_exiting = False


def get_logger():
    """Returns the logger used by multiprocessing."""
    global _logger
    if _logger is None:
        _logger = logging.getLogger(LOGGER_NAME)
        _logger.propagate = 0
    return _logger


def log_to_stderr(level=None):
    """Turn on logging and add a handler which prints to stderr."""
    logger = get_logger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(DEFAULT_LOGGING_FORMAT))
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    return logger


def _exit_function():
    """At the end of a process: terminates its daemonic children, then joins the rest."""
    global _exiting
    if _exiting:
        return
    _exiting = True
    from .process import active_children
    for p in active_children():
        if p.daemon:
            p.terminate()
    for p in active_children():
        p.join()


def _close_stdin():
    """A child reads nothing from stdin, as under CPython (which gives it /dev/null)."""
    sys.stdin = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")


def _flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass
