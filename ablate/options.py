"""The command line's places and devices, checked before a command writes anything.

`ablate run` creates the results folder, the Optuna database and the MLflow store before its
first trial. A `--results` or `--checkpoint-dir` that names a file, a `--storage` in a folder
that does not exist, a `--tracking-uri` MLflow cannot use or a server that does not answer,
and a `--devices` entry the machine lacks used to surface only after those were written: as
a traceback, or as every trial failing. Each check raises UserError naming the option, the
bad value (its password masked) and what is allowed. Nothing heavy is imported at first:
torch only to count devices, requests only to reach a tracking server, the engine only for
the default places under --results.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ablate.errors import UserError
from ablate.urls import mask_secrets, sqlite_path

# --------------------------------------------------------------------------- devices


def check_devices(devices: str | None, here: Sequence[str] | None = None) -> None:
    """Each `--devices` entry is `cpu`, `cuda`, `cuda:N` with N below the CUDA devices torch
    sees, or `mps` where it is available (`here`: the devices there are; default: what torch
    finds); otherwise every trial on it would fail."""
    if devices is None:
        return
    names = [d.strip() for d in devices.split(",") if d.strip()]
    if not names:
        raise UserError(f"--devices {devices!r}: names no device; e.g. cpu, or cuda:0,cuda:1")
    if here is None and all(n == "cpu" for n in names):
        return  # torch need not be imported to know this machine has a CPU
    here = list(here) if here is not None else devices_here()
    for name in names:
        if name in here:
            continue
        what = (
            f"no device {name!r} here"
            if re.fullmatch(r"cuda(:\d+)?|mps", name)
            else f"{name!r} is not a device name (a device is cpu, cuda, cuda:N or mps)"
        )
        raise UserError(f"--devices {devices}: {what}; this machine has {_listed(here)}")


def devices_here() -> list[str]:
    """The devices torch can train on here: cpu, then cuda and cuda:0 … cuda:N-1, then mps."""
    import torch

    found = ["cpu"]
    count = torch.cuda.device_count()  # CUDA_VISIBLE_DEVICES counted; no CUDA context made
    if count:
        found += ["cuda", *(f"cuda:{i}" for i in range(count))]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def _listed(here: Sequence[str]) -> str:
    cuda = [d for d in here if d.startswith("cuda:")]
    text = "cpu"
    if cuda:
        text += f", {cuda[0]}" + (f" … {cuda[-1]}" if len(cuda) > 1 else "")
    else:
        text += " and no CUDA device (torch.cuda.device_count() is 0)"
    return text + (", mps" if "mps" in here else "")


# --------------------------------------------------------------------------- folders


def check_folder(option: str, folder: Path) -> None:
    """A folder the command makes if missing: neither it nor a folder above it may be a
    file, and the first one there must be writable."""
    for part in (folder, *folder.parents):
        if part.is_dir():
            if not os.access(part, os.W_OK | os.X_OK):
                raise UserError(f"{option} {folder}: cannot write in {part} (permission denied)")
            return
        if part.is_symlink() and not part.exists():
            raise UserError(f"{option} {folder}: {part} is a broken symbolic link")
        if part.exists():
            where = "is a file, not a folder" if part == folder else "is a file"
            raise UserError(
                f"{option} {folder}: {part} {where}; give a folder (it is made if missing)"
            )


# --------------------------------------------------------------------------- stores


def check_sqlite(option: str, url: str, *, made: bool) -> None:
    """An SQLite database file: not a folder; its folder must exist unless the command
    `made` it (the defaults under --results): an explicit URL whose folder is missing is a
    typo more often than a wish for a new folder."""
    file = sqlite_path(url)
    if file is None:
        return
    shown = mask_secrets(url)
    if file.exists() and not file.is_file():
        raise UserError(f"{option} {shown}: {file} is not a file (an SQLite database is one)")
    if not made and not file.parent.is_dir():
        what = "is not a folder" if file.parent.exists() else "does not exist"
        raise UserError(
            f"{option} {shown}: the folder {file.parent} {what}; create it first, or give "
            "another path (an explicit database's folder is not made)"
        )
    check_folder(option, file.parent)


# MLflow 3.17's tracking stores (mlflow.tracking._tracking_service.utils registers them): a
# SQL database (SQLAlchemy, `+driver` allowed), a tracking server, Databricks, or a folder
# (its file store, which MLflow 3 refuses unless MLFLOW_ALLOW_FILE_STORE=true). A plugin adds
# its schemes through the entry point group below.
_SQL_STORES = ("sqlite", "postgresql", "mysql", "mssql")
_SERVERS = ("http", "https")
_OTHER_STORES = ("databricks",)
_PLUGIN_GROUP = "mlflow.tracking_store"


def tracking_kind(uri: str) -> str:
    """The tracking store a URI names, read as MLflow's store registry reads it: `postgresql`
    for `postgresql+psycopg2://…`, `http`, `file`, `databricks` (bare too); "" for a path."""
    if uri in ("databricks", "databricks-uc", "uc"):
        return uri
    kind = urlsplit(uri).scheme.lower()
    sql = [db for db in _SQL_STORES if kind.startswith(db)]
    return sql[0] if sql else kind


def check_tracking_uri(
    uri: str, reach: Reach | None = None, option: str = "--tracking-uri"
) -> None:
    """A tracking URI MLflow can use: a known scheme; an SQLite file whose folder exists; a
    folder only where MLflow allows its file store; a server that answers (`reach`).
    `option` is where the URI came from, as messages name it."""
    kind = tracking_kind(uri)
    shown = f"{option} {mask_secrets(uri)}"
    if kind in ("", "file"):
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() not in ("true", "1"):
            raise UserError(
                f"{shown}: a folder (MLflow's file store), which MLflow 3 "
                "refuses unless MLFLOW_ALLOW_FILE_STORE=true; give a database "
                "(sqlite:///PATH/mlflow.db) or a tracking server (http://HOST:5000)"
            )
        folder = Path(urlsplit(uri).path) if kind == "file" else Path(uri)
        check_folder(option, folder)
        return
    plugins = {e.name for e in entry_points(group=_PLUGIN_GROUP)}
    if kind not in {*_SQL_STORES, *_SERVERS, *_OTHER_STORES, *plugins}:
        more = f", or a plugin's ({', '.join(sorted(plugins))})" if plugins else ""
        raise UserError(
            f"{shown}: MLflow has no tracking store for {kind!r} URIs; allowed: "
            "sqlite:///PATH, postgresql://…, mysql://…, mssql+DRIVER://… (SQLAlchemy URLs), "
            f"http(s)://HOST:PORT (an MLflow server), databricks{more}"
        )
    if kind == "sqlite":
        check_sqlite(option, uri, made=False)
    if kind in _SERVERS:
        (reach or Reach()).check(uri, option)


@dataclass(frozen=True)
class Reach:
    """How hard to try a tracking server before refusing it: `tries` GETs of its `/health`
    with `timeout_s` each and waits growing by `wait_s` between (the defaults: at most ~18 s
    in all, where MLflow's own client retried for minutes before failing with a traceback)."""

    tries: int = 3
    timeout_s: float = 5.0
    wait_s: float = 1.0

    def check(self, uri: str, option: str = "--tracking-uri") -> None:
        """Refuse a server that does not answer, or answers as no MLflow server does."""
        import requests

        base = _without_userinfo(uri).rstrip("/")
        shown = f"{option} {mask_secrets(uri)}"
        options = _tls_options()
        started, why = time.monotonic(), ""
        for attempt in range(self.tries):
            if attempt:
                time.sleep(self.wait_s * attempt)
            try:
                code = _status(requests, f"{base}/health", self.timeout_s, options)
                if code == 404:  # a proxy may route only MLflow's REST API
                    api = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
                    code = _status(requests, api, self.timeout_s, options)
            except requests.exceptions.SSLError as exc:
                raise UserError(
                    f"{shown}: TLS failed ({_reason(exc)}); MLflow takes a CA "
                    "file from MLFLOW_TRACKING_SERVER_CERT_PATH, or skips the check with "
                    "MLFLOW_TRACKING_INSECURE_TLS=true"
                ) from None
            except requests.RequestException as exc:
                why = _reason(exc, self.timeout_s)
                continue
            if code == 404:
                raise UserError(
                    f"{shown}: a web server answers, but not as an MLflow "
                    "tracking server (HTTP 404 for /health and the REST API): check the URL's "
                    "host, port and path"
                )
            if code < 500:  # 401/403: a server asking for the credentials MLflow sends
                return
            why = f"HTTP {code}"
        spent = time.monotonic() - started
        raise UserError(
            mask_secrets(
                f"{shown}: no MLflow tracking server answers there ({why}; "
                f"{self.tries} tries in {spent:.0f} s); start it (mlflow server --host HOST "
                "--port PORT) or correct the URI"
            )
        )


def _status(requests: Any, url: str, timeout_s: float, options: dict[str, Any]) -> int:
    return int(requests.get(url, timeout=timeout_s, **options).status_code)


def _without_userinfo(uri: str) -> str:
    """The URI without `user:password@`, query or fragment: MLflow sends credentials from
    MLFLOW_TRACKING_USERNAME/PASSWORD, and /health needs none."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _tls_options() -> dict[str, Any]:
    """The TLS settings MLflow's client takes from its environment, so the check trusts what
    MLflow would trust."""
    options: dict[str, Any] = {}
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").strip().lower() in ("true", "1"):
        options["verify"] = False
    elif ca := os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        options["verify"] = ca
    if cert := os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
        options["cert"] = cert
    return options


def _reason(exc: BaseException, timeout_s: float | None = None) -> str:
    """Why a request failed, in a few words: `Connection refused`, `no answer in 5 s`."""
    import requests

    if isinstance(exc, requests.exceptions.Timeout) and timeout_s is not None:
        return f"no answer in {timeout_s:g} s"
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    return type(exc).__name__


# --------------------------------------------------------------------------- one command


def check_places(
    name: str,
    results: Path,
    storage: str | None,
    tracking_uri: str | None,
    checkpoints: Path | None,
    *,
    reach: Reach | None = None,
) -> None:
    """Every place `run` and `submit` write to, checked before any is written: the results
    folder and the study's folder in it, the checkpoints, the Optuna storage and the tracking
    store (each default as `Locations.resolve` makes it, under `results`)."""
    from ablate.study import default_checkpoints, default_storage_url
    from ablate.track import default_tracking_uri

    check_folder("--results", results)
    check_folder("--results", results / name)
    if checkpoints is not None:
        check_folder("--checkpoint-dir", checkpoints)
    else:
        check_folder("--results", default_checkpoints(results, name))
    if storage is not None:
        check_sqlite("--storage", storage, made=False)
    else:
        check_sqlite("--results", default_storage_url(results, name), made=True)
    if tracking_uri is not None:
        check_tracking_uri(tracking_uri, reach)
    else:
        check_sqlite("--results", default_tracking_uri(results), made=True)
