"""The one room where ablate touches Optuna's private storage.

Why it must: Optuna has no public atomic claim. `Study.ask()` pops a WAITING trial by reading its
state and then writing it, and SQLite ignores the `FOR UPDATE` in between: two workers both won
one trial (11 double claims in 300 pops with 4 processes). Its `fail_stale_trials` has the same
read-then-write race, and `tell` reads a trial back twice and writes in several transactions. So
the engine changes a trial's state with one conditional UPDATE on Optuna's own tables, writes a
trial's attributes in one transaction, and records a search's confirmation with one INSERT on the
(study, key) unique row. It also reads a study's trials with four queries on those tables:
Optuna's own read builds an ORM object per row, 2 s for a study of 2,000 trials that `ablate
status` would wait on. Everything that reaches past Optuna's public API is here, in `Store`:
the RDB models and their tables, the storage behind the cache (`_backend`), the study id, the
trial cache (`_thread_local`) and the stale-trial query.

Those internals are not a contract, so a store is opened only when the installed Optuna is one
this module was written and tested for (`OPTUNA_TESTED`) and its tables have the columns the
statements below use; otherwise `StorageError` names the versions (the CLI exits 2).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import sqlite3
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

import optuna
import sqlalchemy
from optuna.distributions import json_to_distribution
from optuna.storages import RDBStorage
from optuna.storages._rdb.models import (
    StudyUserAttributeModel,
    TrialHeartbeatModel,
    TrialModel,
    TrialParamModel,
    TrialUserAttributeModel,
    TrialValueModel,
)
from optuna.trial import FrozenTrial, TrialState

from ablate.errors import StorageDown, StorageError, disk_refused
from ablate.urls import POOL_KEPT, mask_password, pool_extra, sqlite_path

OPTUNA_TESTED = ((5, 0), (6, 0))  # [low, high): the releases these statements were checked on

# The columns the statements below read or write, per table.
_COLUMNS = {
    "trials": {"trial_id", "number", "study_id", "state", "datetime_start", "datetime_complete"},
    "trial_user_attributes": {"trial_id", "key", "value_json"},
    "trial_values": {"trial_id", "objective", "value", "value_type"},
    "trial_params": {"trial_id", "param_id", "param_name", "param_value", "distribution_json"},
    "trial_heartbeats": {"trial_id", "heartbeat"},
    "study_user_attributes": {"study_id", "key", "value_json"},
}

HEARTBEAT_S = 10  # a running trial records a heartbeat this often ...
GRACE_S = 60  # ... and is declared dead (then re-queued) after this long without one


def _version(text: str) -> tuple[int, int]:
    major, minor, *_ = (text.split("+")[0] + ".0").split(".")
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def check_optuna_version(installed: str = optuna.__version__) -> None:
    """Refuse an Optuna release outside the tested range, naming both."""
    low, high = OPTUNA_TESTED
    if not low <= _version(installed) < high:
        raise StorageError(
            f"optuna {installed} is installed, but ablate's storage code was written for "
            f"optuna >={low[0]}.{low[1]},<{high[0]}.{high[1]} (it relies on the layout of "
            f"Optuna's tables); install a release in that range: "
            f"pip install 'optuna>={low[0]}.{low[1]},<{high[0]}.{high[1]}'"
        )


def check_tables(engine: Any, url: str) -> None:
    """Refuse a storage whose tables lack a column the engine's statements use."""
    inspector = sqlalchemy.inspect(engine)
    missing = []
    for table, wanted in _COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        missing += [f"{table}.{c}" for c in sorted(wanted - have)]
    if missing:
        raise StorageError(
            f"{safe_url(url)}: the Optuna tables lack {', '.join(missing)} (made by another "
            f"Optuna release than {optuna.__version__}?); ablate needs optuna "
            f">={OPTUNA_TESTED[0][0]}.{OPTUNA_TESTED[0][1]},<{OPTUNA_TESTED[1][0]}.0 and the "
            "tables it makes"
        )


def safe_url(url: str) -> str:
    """A storage URL without its password, for messages."""
    return mask_password(url)


def _seconds(name: str, default: int) -> int:
    """An interval from the environment (ABLATE_HEARTBEAT_S, ABLATE_GRACE_S), read when a
    storage is opened so tests can shorten it; the default otherwise."""
    return int(os.environ.get(name, default))


_SQLITE_HEADER = b"SQLite format 3\x00"


def check_sqlite_file(file: Path) -> None:
    """Refuse a file that is there but is no SQLite database (truncated to nothing, random
    bytes, another format): SQLite would re-create an empty one silently, or fail deep inside
    Optuna, and either way every trial would be trained again."""
    if not file.exists():
        return
    if file.is_dir():
        raise StorageError(f"{file}: is a folder, not an Optuna database")
    with file.open("rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if head != _SQLITE_HEADER:
        what = "is empty (0 bytes)" if not head else "is not an SQLite database"
        raise StorageError(
            f"{file}: {what}, so its study cannot be read; restore it from a backup, or move "
            "it away (or delete the study's results folder) to start the study over"
        )
    # damaged inside (truncated, overwritten): `quick_check` reads every page once, read-only,
    # milliseconds for a study, before Optuna fails somewhere inside it
    try:
        with contextlib.closing(
            sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        ) as conn:
            verdict = str(conn.execute("PRAGMA quick_check").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise _damaged(file, verdict)


def open_storage(url: str, *, read_only: bool = False) -> RDBStorage:
    """An RDB storage with heartbeats, after the version and table checks. No stale-trial
    callback: Optuna's own sweep fails a dead worker's trial with a read-then-write race;
    ablate's queue sweeps them itself (`Queue.sweep_stale`). `read_only`: for a command that
    only reads an existing study, Optuna neither creates missing tables nor compares the
    schema's migration version (importing its migration tool and a dozen queries, a quarter
    of `ablate status`'s wait); the check on the columns ablate reads stays."""
    check_optuna_version()
    if (file := sqlite_path(url)) is not None:
        check_sqlite_file(file)
        file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                url,
                engine_kwargs={"connect_args": {"timeout": 60}}
                if url.startswith("sqlite")
                # see urls.POOL_KEPT (the heartbeat thread opens a second only while it beats)
                else {"pool_size": POOL_KEPT, "max_overflow": pool_extra()},
                heartbeat_interval=_seconds("ABLATE_HEARTBEAT_S", HEARTBEAT_S),
                grace_period=_seconds("ABLATE_GRACE_S", GRACE_S),
                skip_table_creation=read_only,
                skip_compatibility_check=read_only,
            )
        check_tables(storage.engine, url)
    except (
        sqlalchemy.exc.SQLAlchemyError,
        optuna.exceptions.StorageInternalError,  # Optuna's wrapping of the driver's error
        ImportError,
        ValueError,
    ) as exc:
        cause = cause_of(exc)
        if file is not None and ("malformed" in cause or "not a database" in cause):
            raise _damaged(file, cause) from None
        raise StorageError(
            f"{safe_url(url)}: cannot open the Optuna storage: {cause_of(exc)}"
        ) from None
    return storage


def _damaged(file: Path, cause: str) -> StorageError:
    return StorageError(
        f"{file}: the database is damaged ({cause[:200]}); restore it from a backup, or move "
        "it away (or delete the study's results folder) to start the study over"
    )


def cause_of(exc: BaseException) -> str:
    """The first line of what the driver said, without SQLAlchemy's links and statements."""
    if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if isinstance(exc, ImportError):
        first += " (install the driver: pip install -e '.[postgres]' for PostgreSQL)"
    return first[:300]


# -- outages: a database that goes away for a while (a restart, a failover, a full
# connection table) is waited for; past OUTAGE_S the study stops with one line.

OUTAGE_S = 120  # how long one storage call is retried, with backoff, before the study stops
_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # then 15 s between tries

_DISK_FULL = ("database or disk is full", "disk is full", "readonly database", "disk i/o error")
_REFUSED = (  # errors of a reachable server that waiting does not fix
    "authentication failed",
    "no password supplied",
    "does not exist",
    "permission denied",
    "no pg_hba.conf entry",
)
_TRANSIENT = (
    sqlalchemy.exc.OperationalError,  # refused, reset, "too many clients", SQLite busy
    sqlalchemy.exc.InterfaceError,  # the connection was closed under the driver
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no connection free in the pool in time
)

T = TypeVar("T")


def storage_fault(exc: BaseException) -> Literal["transient", "disk"] | None:
    """What a storage call's error means: `transient` (the server or the connection went
    away, or is busy: try again), `disk` (SQLite's file cannot grow or be written: trying
    again does not help) or None (a bug, a constraint: not ours to hide)."""
    seen: set[int] = set()  # Optuna's and MLflow's errors wrap SQLAlchemy's as their cause
    while not isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        if exc.__cause__ is None or id(exc) in seen:
            return None
        seen.add(id(exc))
        exc = exc.__cause__
    text = cause_of(exc).lower()
    if any(words in text for words in _DISK_FULL):
        return "disk"
    if any(words in text for words in _REFUSED):
        return None  # the server answered: no
    if isinstance(getattr(exc, "orig", None), sqlite3.Error):  # a local file, no server
        return "transient" if "locked" in text or "busy" in text else None
    if isinstance(exc, _TRANSIENT) or getattr(exc, "connection_invalidated", False):
        return "transient"
    return None


def retrying(
    url: str,
    call: Callable[[], T],
    again: Callable[[], T | None] | None = None,
    *,
    deadline_s: float | None = None,
    store: str = "the Optuna storage",
) -> T:
    """`call()`, retried with backoff while the storage at `url` is unreachable, for up to
    `OUTAGE_S` (ABLATE_OUTAGE_S); then `StorageDown`. A full or read-only SQLite file raises
    `DiskError` at once. `again`, for a write whose first try may have gone through before
    its connection broke, is asked before each retry: what it returns (not None) is the
    outcome of the earlier try, and the call is not repeated."""
    limit = _seconds("ABLATE_OUTAGE_S", OUTAGE_S) if deadline_s is None else deadline_s
    start, tries = time.monotonic(), 0
    while True:
        try:
            if tries and again is not None and (earlier := again()) is not None:
                return earlier
            return call()
        except Exception as exc:
            fault = storage_fault(exc)
            if fault == "disk":
                where = sqlite_path(url) or mask_password(url)
                raise disk_refused(where, cause_of(exc), "free space or make it writable") from None
            waited = time.monotonic() - start
            if fault is None:
                raise
            if waited >= limit:
                raise StorageDown(
                    f"{mask_password(url)}: {store} was unreachable for {waited:.0f} s "
                    f"({cause_of(exc)}); finished trials are kept and running ones are re-queued "
                    "(or swept once their heartbeat is stale): run the same command again once "
                    "it is back"
                ) from None
            pause = _BACKOFF_S[min(tries, len(_BACKOFF_S) - 1)]
            time.sleep(min(pause, max(0.0, limit - waited)))
            tries += 1


@dataclass(frozen=True)
class StoredTrial:
    """What ablate reads of a trial: Optuna's `FrozenTrial` less the system attributes and
    intermediate values, which ablate never reads."""

    trial_id: int
    number: int
    state: TrialState
    value: float | None
    params: Mapping[str, Any]
    user_attrs: Mapping[str, Any]
    datetime_start: datetime | None  # local time, as Optuna's own models give it back
    datetime_complete: datetime | None


def _local(utc: datetime | None) -> datetime | None:
    """Optuna 5's naive-UTC column as the naive local time its models return."""
    return (
        None if utc is None else utc.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)
    )


def _from_frozen(trial: FrozenTrial) -> StoredTrial:
    return StoredTrial(
        trial._trial_id,
        trial.number,
        trial.state,
        trial.value,
        trial.params,
        trial.user_attrs,
        trial.datetime_start,
        trial.datetime_complete,
    )


def _grouped(rows: Any) -> dict[int, list[Any]]:
    """Rows ordered by their first column (a trial id), grouped by it."""
    return {tid: list(group) for tid, group in itertools.groupby(rows, key=lambda r: r[0])}


def _without(trial: StoredTrial, keys: tuple[str, ...]) -> StoredTrial:
    attrs = {k: v for k, v in trial.user_attrs.items() if k not in keys}
    return replace(trial, user_attrs=attrs) if keys else trial


def _read_trials(conn: Any, where: Any, skip_attrs: tuple[str, ...] = ()) -> list[StoredTrial]:
    """The trials `where` selects, in trial order, in four set-based queries (trials, their
    attributes, values and parameters): Optuna's ORM builds an object per row of each, about
    ten times slower for a study of thousands of trials."""
    trials, attrs = TrialModel.__table__, TrialUserAttributeModel.__table__
    values, params = TrialValueModel.__table__, TrialParamModel.__table__

    def of(table: Any, *columns: Any, also: Any = None) -> dict[int, list[Any]]:
        query = (
            sqlalchemy.select(table.c.trial_id, *columns)
            .join(trials, trials.c.trial_id == table.c.trial_id)
            .where(where if also is None else where & also)
            .order_by(table.c.trial_id)
        )
        return _grouped(conn.execute(query))

    heads = conn.execute(
        sqlalchemy.select(
            trials.c.trial_id, trials.c.number, trials.c.state,
            trials.c.datetime_start, trials.c.datetime_complete,
        ).where(where).order_by(trials.c.trial_id)
    ).all()  # fmt: skip
    attrs_of = of(attrs, attrs.c.key, attrs.c.value_json, also=attrs.c.key.not_in(skip_attrs))
    values_of = of(values, values.c.value, values.c.value_type, values.c.objective)
    params_of = of(params, params.c.param_name, params.c.param_value, params.c.distribution_json)
    found = []
    for tid, number, state, start, complete in heads:
        value = None
        for _, stored, kind, objective in values_of.get(tid, []):
            if objective == 0:
                value = TrialValueModel.stored_repr_to_value(stored, kind)
        found.append(
            StoredTrial(
                tid, number, state, value,
                {
                    name: json_to_distribution(dist).to_external_repr(stored)
                    for _, name, stored, dist in params_of.get(tid, [])
                },
                {key: json.loads(text) for _, key, text in attrs_of.get(tid, [])},
                _local(start), _local(complete),
            )
        )  # fmt: skip
    return found


class Store:
    """An Optuna study and the few statements Optuna has no atomic or batched call for."""

    def __init__(self, ostudy: optuna.Study, url: str = "") -> None:
        self.ostudy = ostudy
        storage: Any = ostudy._storage
        self._storage = storage  # the cache in front of the RDB storage
        self._study_id: int = ostudy._study_id
        self.url = url  # for messages, masked

    def _retry(self, call: Callable[[], T], again: Callable[[], T | None] | None = None) -> T:
        """Every statement below goes through here: an outage is waited for (`retrying`)."""
        return retrying(self.url, call, again)

    @property
    def _rdb(self) -> RDBStorage | None:
        """The RDB storage behind Optuna's cache; None for a study in memory (tests), which
        is read through Optuna's own API."""
        backend = getattr(self._storage, "_backend", self._storage)
        return backend if isinstance(backend, RDBStorage) else None

    @property
    def _engine(self) -> Any:
        """The SQLAlchemy engine of the RDB storage (the statements below need one)."""
        rdb = self._rdb
        assert rdb is not None, "a study in memory has no tables to write with statements"
        return rdb.engine

    # -- reading

    def trials(
        self, states: tuple[TrialState, ...] | None = None, skip_attrs: tuple[str, ...] = ()
    ) -> list[StoredTrial]:
        """The study's trials (those in `states`), read straight from its tables, without the
        user attributes named in `skip_attrs`."""
        if self._rdb is None:
            found = [_from_frozen(t) for t in self.ostudy.get_trials(deepcopy=False, states=states)]
            return [_without(t, skip_attrs) for t in found]

        def read() -> list[StoredTrial]:
            with self._engine.connect() as conn:
                return _read_trials(conn, self._of_study(states), skip_attrs)

        return self._retry(read)

    def trial(self, trial_id: int) -> StoredTrial:
        if self._rdb is None:
            return _from_frozen(self._storage.get_trial(trial_id))

        def read() -> StoredTrial:
            with self._engine.connect() as conn:
                (found,) = _read_trials(conn, TrialModel.__table__.c.trial_id == trial_id)
            return found

        return self._retry(read)

    def count(self, states: tuple[TrialState, ...]) -> dict[TrialState, int]:
        """How many of the study's trials are in each of `states` (those with none are left
        out): one grouped count, for the idle workers' poll, not a read of every trial."""
        if self._rdb is None:
            found = self.ostudy.get_trials(deepcopy=False, states=states)
            return dict(Counter(t.state for t in found))
        column = TrialModel.__table__.c
        query = (
            sqlalchemy.select(column.state, sqlalchemy.func.count())
            .where(self._of_study(states))
            .group_by(column.state)
        )

        def read() -> dict[TrialState, int]:
            with self._engine.connect() as conn:
                return {state: int(n) for state, n in conn.execute(query)}

        return self._retry(read)

    def _of_study(self, states: tuple[TrialState, ...] | None) -> Any:
        """The WHERE clause of this study's trials in `states` (all of them for None)."""
        column = TrialModel.__table__.c
        where = column.study_id == self._study_id
        return where if states is None else where & column.state.in_(states)

    @property
    def attrs(self) -> dict[str, Any]:
        """The study's user attributes."""
        return self._retry(lambda: self.ostudy.user_attrs)

    def set_attr(self, key: str, value: Any) -> None:
        self._retry(lambda: self.ostudy.set_user_attr(key, value))  # idempotent

    def oldest_waiting(self, limit: int) -> list[int]:
        """Ids of the `limit` oldest WAITING trials: one indexed query, where `get_trials` would
        read and parse every unfinished trial with its attributes on every pop."""
        trials = TrialModel.__table__
        query = (
            sqlalchemy.select(trials.c.trial_id)
            .where(trials.c.study_id == self._study_id, trials.c.state == TrialState.WAITING)
            .order_by(trials.c.trial_id)
            .limit(limit)
        )

        def read() -> list[int]:
            with self._engine.connect() as conn:
                return [int(i) for i in conn.execute(query).scalars()]

        return self._retry(read)

    def stale_trial_ids(self) -> list[int]:
        """RUNNING trials whose heartbeat is older than the grace period."""
        return self._retry(lambda: list(self._storage._get_stale_trial_ids(self._study_id)))

    # -- writing

    def enqueue(self, params: Mapping[str, Any], attrs: Mapping[str, Any]) -> None:
        """A WAITING trial; retried after an outage only if the first try left none with
        these attributes (its connection may have broken after the commit)."""

        def enqueued() -> bool | None:
            waiting = self.trials((TrialState.WAITING,))
            mine = _as_stored(attrs)
            return True if any(dict(t.user_attrs) == mine for t in waiting) else None

        def enqueue() -> bool:
            self.ostudy.enqueue_trial(dict(params), user_attrs=dict(attrs))
            return True

        self._retry(enqueue, enqueued)

    def claim(self, trial_id: int) -> bool:
        """WAITING -> RUNNING for this process, with the first heartbeat in the same
        transaction, so a worker that dies right after claiming leaves a trial the heartbeat
        sweep will find. A claim whose connection broke after its commit reads as not won:
        the trial is then swept as a lost try, never trained twice."""

        def claim() -> bool:
            with self._engine.begin() as conn:
                if not _change_state(conn, trial_id, TrialState.WAITING, TrialState.RUNNING):
                    return False
                table = TrialHeartbeatModel.__table__
                conn.execute(sqlalchemy.insert(table).values(trial_id=trial_id))
            return True

        return self._retry(claim)

    def pop_waiting(self, spread: int = 8) -> int | None:
        """Claim one of the oldest WAITING trials; its trial id, or None. Workers try the
        `spread` oldest in random order, so they rarely race for the same one."""
        while waiting := self.oldest_waiting(spread):
            for trial_id in random.sample(waiting, len(waiting)):
                if self.claim(trial_id):
                    return trial_id
        return None

    def set_trial_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Several user attributes of a trial, in one transaction (Optuna writes each in its
        own)."""

        def write() -> None:
            with self._engine.begin() as conn:
                _write_attrs(conn, trial_id, attrs)

        self._retry(write)

    def heartbeat(self, trial_id: int) -> None:
        self._retry(lambda: self._storage.record_heartbeat(trial_id))

    @property
    def heartbeat_interval(self) -> int:
        return int(self._storage.get_heartbeat_interval() or HEARTBEAT_S)

    def finish(
        self,
        trial_id: int,
        state: TrialState,
        value: float | None,
        attrs: Mapping[str, Any],
    ) -> bool:
        """End a RUNNING trial: its attributes, its state and (COMPLETE) its value, in one
        transaction that only goes through while the trial is still RUNNING. False, with
        nothing written, when another process ended it first: its worker, or a heartbeat
        sweep that took the worker for dead. After an outage, a try that went through before
        its connection broke is recognised (the trial holds this state, value and attributes)
        rather than read as lost."""

        def finish() -> bool:
            with self._engine.begin() as conn:
                if not _change_state(conn, trial_id, TrialState.RUNNING, state):
                    return False
                _write_attrs(conn, trial_id, attrs)
                if value is not None:
                    stored, kind = TrialValueModel.value_to_stored_repr(value)
                    conn.execute(
                        sqlalchemy.insert(TrialValueModel.__table__).values(
                            trial_id=trial_id, objective=0, value=stored, value_type=kind
                        )
                    )
            return True

        def went_through() -> bool | None:
            now = self.trial(trial_id)
            mine = now.state == state and now.value == value
            same = all(now.user_attrs.get(k) == v for k, v in _as_stored(attrs).items())
            return True if mine and same else None

        return self._retry(finish, went_through)

    def add_study_attr_once(self, key: str, value: Any) -> bool:
        """Record a study attribute unless one is there already: one INSERT on Optuna's
        (study, key) unique row, which exactly one of several racing processes wins."""
        table = StudyUserAttributeModel.__table__

        def insert() -> bool:
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        sqlalchemy.insert(table).values(
                            study_id=self._study_id, key=key, value_json=json.dumps(value)
                        )
                    )
            except sqlalchemy.exc.IntegrityError:
                return False
            return True

        return self._retry(insert)

    def trial_for_sampling(self, trial_id: int) -> optuna.Trial:
        """An Optuna `Trial` on a trial this process claimed, for a sampler to suggest values
        into. Optuna's per-thread trial cache is dropped first: another process enqueued the
        trial and this one claimed it with its own UPDATE, and the sampler must see every
        trial finished until now."""
        self.ostudy._thread_local.cached_all_trials = None
        self._storage.get_all_trials(self._study_id, deepcopy=False)
        return optuna.Trial(self.ostudy, trial_id)


def _as_stored(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as they read back from the tables (JSON: tuples become lists)."""
    return {k: json.loads(json.dumps(v)) for k, v in attrs.items()}


def _change_state(conn: Any, trial_id: int, old: TrialState, new: TrialState) -> bool:
    """Change a trial's state from `old` to `new` in one conditional UPDATE; True when this
    statement made the change. A single UPDATE ... WHERE state = old cannot be won twice on
    any database."""
    trials = TrialModel.__table__
    # Optuna 5's RDB columns hold naive UTC (its models convert to local time when read back);
    # Optuna 4 wrote local time there, one reason the release is checked before opening.
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    stamp = "datetime_start" if new == TrialState.RUNNING else "datetime_complete"
    changed = conn.execute(
        sqlalchemy.update(trials)
        .where(trials.c.trial_id == trial_id, trials.c.state == old)
        .values({trials.c.state: new, trials.c[stamp]: now})
    ).rowcount
    return bool(changed == 1)


def _write_attrs(conn: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
    table = TrialUserAttributeModel.__table__
    rows = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
    if rows:
        conn.execute(
            sqlalchemy.delete(table).where(table.c.trial_id == trial_id, table.c.key.in_(attrs))
        )
        conn.execute(sqlalchemy.insert(table), rows)
