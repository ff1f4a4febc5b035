"""One exception family for the engine.

Every error a user can cause derives from :class:`EngineError` and carries the exit
status the CLI returns for it. The CLI prints ``str(error)`` as one line on stderr; any
other exception is a bug in the engine and is shown with a traceback.

Exit statuses (the one table, shared by every command):

==== ==========================================================================
0    done
1    an unexpected error: a bug in the engine (the only case with a traceback)
2    bad input: config, CLI arguments, or data that does not match its schema
3    the quality gate failed (``failed_quality``)
4    the requirements gate failed (``failed_requirements``); ``mlops validate``: the
     candidate fails the promotion policy against the champion
5    ``mlops reproduce``: the re-executed run is not identical
6    ``mlops monitor``: a monitoring rule of severity error failed (drift, live
     quality, performance)
130  interrupted (Ctrl-C / SIGTERM); the run is recorded as ``interrupted``
==== ==========================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_QUALITY = 3
EXIT_REQUIREMENTS = 4
EXIT_NOT_REPRODUCED = 5
EXIT_MONITOR = 6
EXIT_INTERRUPTED = 130


class EngineError(Exception):
    """Root of every error a user can cause; ``exit_status`` is what the CLI returns."""

    exit_status: int = EXIT_BAD_INPUT
    #: The ``status`` a run that stops on this error is recorded with.
    run_status: str = "failed"


class ConfigError(EngineError, ValueError):
    """A composed config is invalid: wrong key, type, value, option or ``_target_``.

    Args:
        path: Dotted key path, e.g. ``model.n_estimators``; empty for the root.
        problem: What is wrong, phrased as "expected X, got Y".
        source: Where the key came from (a config file or a command-line override).
    """

    def __init__(self, path: str, problem: str, source: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.source = source
        where = path or "<root>"
        if source:
            where = f"{where} ({source})"
        super().__init__(f"config error at {where}: {problem}")

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str | None]]:
        # Picklable with its own arguments: a sweep worker process (joblib, submitit)
        # sends the error back to the launcher.
        return (type(self), (self.path, self.problem, self.source))


class UsageError(EngineError, ValueError):
    """A bad command-line argument of a plain (non-Hydra) ``mlops`` command."""


class DataError(EngineError, ValueError):
    """Data that cannot be read, or does not match what its config declares."""


class StoreError(EngineError):
    """The metadata store cannot be used: a server that cannot be reached, refused
    credentials, or a schema older or newer than this engine's (exit 2). Its message
    never holds a password."""


class QualityGateError(EngineError):
    """A rule of severity ``error`` failed; the run stops before features."""

    exit_status = EXIT_QUALITY
    run_status = "failed_quality"


class RequirementsGateError(EngineError):
    """A hard business requirement failed; the run is never registered."""

    exit_status = EXIT_REQUIREMENTS
    run_status = "failed_requirements"


class PromotionGateError(EngineError):
    """``mlops validate``: the candidate fails a rule of the promotion policy."""

    exit_status = EXIT_REQUIREMENTS


class MonitorGateError(EngineError):
    """``mlops monitor``: a monitoring rule of severity error failed on the current data."""

    exit_status = EXIT_MONITOR
    run_status = "failed_monitor"


class RequestError(DataError):
    """A request to ``mlops serve`` that cannot be scored: the HTTP status says why.

    Args:
        status: 400 (not JSON or CSV), 413 (body over the size limit), 422 (rows that
            do not match the model's input: a missing column, a wrong type, too many rows).
        message: What is wrong, phrased as "expected X, got Y".
        row: The request row at fault (from 0), if one is.
        column: The column at fault, if one is.
    """

    def __init__(self, status: int, message: str, row: int | None = None, column: str | None = None) -> None:
        self.status = status
        self.message = message
        self.row = row
        self.column = column
        where = " ".join(p for p in (f"row {row}" if row is not None else "",
                                     f"column {column!r}" if column is not None else "") if p)
        super().__init__(f"request error{' at ' + where if where else ''}: {message}")

    def to_json(self) -> dict[str, object]:
        """The body of the error response."""
        return {"error": str(self), "status": self.status, "row": self.row, "column": self.column}
