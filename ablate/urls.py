"""Storage and tracking URLs as they may be shown or stored: never with their password.

A password in `--storage postgresql://user:secret@host/db` or `--tracking-uri` must not reach a
message, a log or the study's stored attributes (which every worker and report reads). Secrets
come from the environment instead: `ABLATE_STORAGE`, `ABLATE_TRACKING_URI`, or the driver's own
variables (`PGPASSWORD`, `~/.pgpass`, `MLFLOW_TRACKING_PASSWORD`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Database connections one process keeps open to a store's server, and opens beyond that only
# while busy. Every worker is a process and the server's limit (PostgreSQL's default 100) is
# shared by all of them: with the drivers' default of 5 kept each, 32 workers were refused.
POOL_KEPT, POOL_EXTRA = 1, 4

_USERINFO = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^/@:]*):(?P<password>[^@/]*)@")


def mask_password(url: str) -> str:
    """`postgresql://ablate:***@host/db` for `postgresql://ablate:secret@host/db`."""
    return _USERINFO.sub(r"\g<head>:***@", url)


def without_password(url: str) -> str:
    """`postgresql://ablate@host/db` for `postgresql://ablate:secret@host/db`: what is stored."""
    return _USERINFO.sub(r"\g<head>@", url)


def scheme(url: str) -> str:
    """The store kind a URL names, without its driver: `postgresql` for
    `postgresql+psycopg2://…`, `sqlite`, `http`, `file`; "" for a plain path."""
    head, sep, _ = url.partition("://")
    return head.split("+", 1)[0].lower() if sep else ""


def host(url: str) -> str | None:
    """The host a URL points at (brackets of an IPv6 address removed); None when it has none."""
    return urlsplit(url).hostname
