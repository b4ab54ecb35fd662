"""Storage and tracking URLs as they may be shown or stored: never with their password.

A password in `--storage postgresql://user:secret@host/db`, in a query such as
`?password=secret`, or in `--tracking-uri` must not reach a message, a log, a report or the
study's stored attributes (which every worker and report reads). Secrets come from the
environment instead: `ABLATE_STORAGE`, `ABLATE_TRACKING_URI`, or the driver's own variables
(`PGPASSWORD`, `~/.pgpass`, `MLFLOW_TRACKING_PASSWORD`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

# Database connections a process keeps open to a store's server, and opens beyond that only
# while busy. Every worker is a process and the server's limit (PostgreSQL's default 100) is
# shared by all of them: with the drivers' default of 5 kept each, 32 workers were refused, and
# with 4 more allowed while busy, 2 of 32 still were. A worker needs two per store at most (its
# main thread and its heartbeat on Optuna's; MLflow's log_batch holds two at once); the one
# `run` or `report` process publishes a report from two threads, so it may open four.
POOL_KEPT, POOL_EXTRA, POOL_EXTRA_REPORTER = 1, 1, 3
_WORKER_ENV = "ABLATE_WORKER_PROCESS"


def as_worker_process() -> None:
    """Bound this process's connections as a worker's, before it opens any store (a spawned
    worker inherits the environment its parent gave MLflow)."""
    os.environ[_WORKER_ENV] = "1"
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] = str(POOL_KEPT)
    os.environ["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"] = str(POOL_EXTRA)


def pool_extra() -> int:
    """Connections this process may open to a store beyond the one it keeps."""
    return POOL_EXTRA if os.environ.get(_WORKER_ENV) else POOL_EXTRA_REPORTER


MASK = "***"

# `scheme://user:password@` — the password is whatever lies between the first ':' after the
# user and the last '@' before the path (a password may itself hold '@' or ':').
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][\w+.-]*://[^/@:\s]*):(?P<password>[^/\s]*)@(?=[^@/\s]*(?:[/?#\s]|$))"
)
# query and keyword parameters that carry a secret: `?password=…`, `&sslpassword=…`, `token=…`
_SECRET_PARAM = re.compile(
    r"(?P<head>(?:[?&;]|\b)(?:[\w.-]*password|passwd|pwd|[\w.-]*token|[\w.-]*secret|"
    r"api[_-]?key|access[_-]?key)=)(?P<value>[^&;#\s'\"]*)",
    re.IGNORECASE,
)


def mask_password(url: str) -> str:
    """`postgresql://ablate:***@host/db` for `postgresql://ablate:secret@host/db`; the value
    of a secret query parameter (`?password=…`, `token=…`) is masked the same way."""
    return mask_secrets(url)


def mask_secrets(text: str) -> str:
    """`text` (a URL, a command line, an error message) with every password it carries
    replaced by `***`: in a URL's user part and in secret parameters."""
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: m["head"] + (MASK if m["value"] else ""), text)


def without_password(url: str) -> str:
    """`postgresql://ablate@host/db` for `postgresql://ablate:secret@host/db`, and a secret
    query parameter dropped: what is stored."""
    url = _USERINFO.sub(r"\g<head>@", url)
    head, sep, query = url.partition("?")
    if not sep:
        return url
    kept = [p for p in re.split(r"[&;]", query) if p and not _SECRET_PARAM.match(p)]
    return head + ("?" + "&".join(kept) if kept else "")


def sqlite_path(url: str) -> Path | None:
    """The file an SQLite URL names (`sqlite:///rel.db`, `sqlite:////abs.db`, a driver after
    `+`); None for an in-memory database or SQLite's own `file:` URI form."""
    head, sep, rest = url.partition("://")
    if not sep or head.split("+", 1)[0].lower() != "sqlite":
        return None
    path = rest.partition("?")[0]
    if not path.startswith("/"):
        return None
    path = path[1:]
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return Path(path)


def scheme(url: str) -> str:
    """The store kind a URL names, without its driver: `postgresql` for
    `postgresql+psycopg2://…`, `sqlite`, `http`, `file`; "" for a plain path."""
    head, sep, _ = url.partition("://")
    return head.split("+", 1)[0].lower() if sep else ""


def host(url: str) -> str | None:
    """The host a URL points at (brackets of an IPv6 address removed); None when it has none."""
    return urlsplit(url).hostname
