"""Storage and tracking URLs as they may be shown or stored: never with their password.

A password in `--storage postgresql://user:secret@host/db` or `--tracking-uri` must not reach a
message, a log or the study's stored attributes (which every worker and report reads). Secrets
come from the environment instead: `ABLATE_STORAGE`, `ABLATE_TRACKING_URI`, or the driver's own
variables (`PGPASSWORD`, `~/.pgpass`, `MLFLOW_TRACKING_PASSWORD`).
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^/@:]*):(?P<password>[^@/]*)@")


def mask_password(url: str) -> str:
    """`postgresql://ablate:***@host/db` for `postgresql://ablate:secret@host/db`."""
    return _USERINFO.sub(r"\g<head>:***@", url)


def without_password(url: str) -> str:
    """`postgresql://ablate@host/db` for `postgresql://ablate:secret@host/db`: what is stored."""
    return _USERINFO.sub(r"\g<head>@", url)
