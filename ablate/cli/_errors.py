"""How the command stops: bad input, a full disk or a storage that failed as one line and exit
code 2 (no traceback); Ctrl-C, SIGTERM and SIGHUP as the shell's 130, 143 and 129."""

from __future__ import annotations

import signal
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ablate.errors import UserError

err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

_SIGNAL_EXIT = {"SIGTERM": 143, "SIGHUP": 129}  # 128 + the signal's number, as a shell reports


def user_errors(fn: F) -> F:
    """Bad input: one message, exit code 2, no traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            say_error(str(exc))
            raise typer.Exit(2) from None
        except OSError as exc:
            from ablate.errors import disk_error

            if (refused := disk_error(exc)) is None:
                raise
            say_error(str(refused))
            raise typer.Exit(2) from None
        except Exception as exc:
            if (stopped := _store_failure(exc)) is None:
                raise
            say_error(stopped)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as stop:
            err_console.print("interrupted; run the same command again to resume")
            raise typer.Exit(_SIGNAL_EXIT.get(stop.args[0] if stop.args else "", 130)) from None

    return wrapper  # type: ignore[return-value]


def say_error(message: str) -> None:
    """One line on stderr, its passwords masked; printed as it is: a pattern like [a-z] in it
    is not rich markup."""
    from ablate.urls import mask_secrets

    err_console.print(
        f"[bold red]error:[/] {escape(mask_secrets(message))}", highlight=False, soft_wrap=True
    )


_STORE_CLIENTS = ("sqlalchemy", "psycopg2", "psycopg", "pymysql", "sqlite3", "optuna.exceptions")


def _store_failure(exc: Exception) -> str | None:
    """A database client's error that reached the command (a storage that went away after the
    retries, a disk that filled under SQLite) as one line; None for any other error, which is
    a bug and keeps its traceback."""
    if not type(exc).__module__.startswith(_STORE_CLIENTS):
        return None
    from ablate.errors import store_error
    from ablate.study import storage_fault  # the engine's own reading of a database error

    cause = store_error(exc)
    if storage_fault(exc) == "disk":
        return (
            f"a database of the study cannot be written ({cause}); free space or make the "
            "results folder writable, then run the same command again (every finished trial "
            "is kept)"
        )
    return (
        f"the study's storage failed: {cause}; nothing trained is lost (finished "
        "trials are recorded, running ones are re-queued): run the same command again once "
        "it works"
    )


def stop_on_sigterm() -> None:
    """SIGTERM (Slurm preemption, `docker stop`, systemd) and SIGHUP (a closed terminal, a
    dropped ssh connection) stop `run` and `worker` as Ctrl-C does: their workers end their
    trials KILLED and re-queued, and the command exits 143 (129 for SIGHUP)."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
