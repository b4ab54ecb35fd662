"""Search studies: the sampler picks each configuration when a worker claims its trial; the
best K are then confirmed on every seed beside a baseline.

The queue stays the one grid studies use. Each of the `n_trials` search cells is enqueued as a
WAITING trial with nothing fixed; the worker that claims one asks the study's sampler (TPE or
random) for its values through an Optuna `Trial` on that same trial, so the sampler sees every
finished configuration and exactly `n_trials` are trained, however many workers race. When no
search trial is waiting or running any more, one process (whichever first records the choice;
the database's unique key on a study attribute decides) picks the K best and enqueues them on
every other seed with their values fixed.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb.models import StudyUserAttributeModel
from optuna.trial import FrozenTrial, TrialState

from ablate.spec import SEARCH_BASELINE, SearchSpec, Study, search_kind
from ablate.study._queue import DONE, MAX_RETRIES, PENDING, Pair, engine_of, sync_queue
from ablate.study._storage import trial_key

CONFIRMATION = "confirmation"  # the study attribute holding the confirmed cells, once chosen


def make_sampler(search: SearchSpec, seed: int) -> optuna.samplers.BaseSampler:
    """Samplers are not stored with the study: each claimed trial builds its own. TPE lies
    about running trials (constant liar) so parallel workers do not all sample one point, and
    starts modelling after a third of the budget (at least 3, at most Optuna's 10): with
    Optuna's fixed 10 random start-up trials, a 12-trial search would be a random one. It is
    univariate: the baseline's trials carry no values, which would leave a multivariate TPE
    an empty joint space."""
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = min(10, max(3, search.n_trials // 3))
    return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed, constant_liar=True)


def suggest(
    ostudy: optuna.Study, trial_id: int, number: int, search: SearchSpec, seed: int
) -> dict[str, Any]:
    """The values of a claimed search trial (`number` is its Optuna number): sampled now, or
    the ones fixed when it was enqueued (a retry, a confirmation). Recorded as the trial's
    Optuna params.

    The sampler is made afresh for each trial, seeded by the study's search seed and the trial
    number: one sampler per process with one seed would draw the same values in every worker,
    and the samplers keep no state that the storage does not hold."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
        ostudy.sampler = make_sampler(search, (seed * 1_000_003 + number) % 2**32)
    # Sample from what is finished now, and let Optuna's trial cache learn of this trial:
    # another process enqueued it, and this one claimed it with its own UPDATE.
    ostudy._thread_local.cached_all_trials = None
    ostudy._storage.get_all_trials(ostudy._study_id, deepcopy=False)
    trial = optuna.Trial(ostudy, trial_id)
    values: dict[str, Any] = {}
    for key, b in search.space.items():
        if search_kind(key, b) == "int":
            values[key] = trial.suggest_int(key, int(b.low), int(b.high), log=b.log)
        else:
            values[key] = trial.suggest_float(key, float(b.low), float(b.high), log=b.log)
    return values


def search_pairs(study: Study) -> list[Pair]:
    """What a search study trains before its confirmation: each search cell once, on the search
    seed, and the baseline (when there is a confirmation) on every seed."""
    search = study.search
    assert search is not None
    pairs = []
    for cell in study.cells:
        if cell.name == SEARCH_BASELINE:
            pairs += [Pair(cell.name, s, dict(cell.overrides)) for s in study.spec.sweep.seeds]
        else:
            pairs.append(Pair(cell.name, study.search_seed, {}, params={}))
    return pairs


def confirmed_cells(ostudy: optuna.Study) -> dict[str, dict[str, Any]]:
    """The confirmed cells with their values ({} until chosen), best first."""
    chosen = ostudy.user_attrs.get(CONFIRMATION, {})
    return {str(c["cell"]): dict(c["params"]) for c in chosen.get("cells", [])}


def confirmation_pairs(study: Study, ostudy: optuna.Study) -> list[Pair]:
    """Every confirmed cell on every seed other than the search seed (trained already)."""
    return [
        Pair(cell, seed, params, params=params)
        for cell, params in confirmed_cells(ostudy).items()
        for seed in study.spec.sweep.seeds
        if seed != study.search_seed
    ]


def _search_trials(study: Study, ostudy: optuna.Study) -> list[FrozenTrial]:
    cells = {c.name for c in study.cells if c.name != SEARCH_BASELINE}
    return [
        t
        for t in ostudy.get_trials(deepcopy=False)
        if (key := trial_key(t)) is not None and key[0] in cells and key[1] == study.search_seed
    ]


def _search_ended(study: Study, trials: list[FrozenTrial]) -> bool:
    """Whether every search cell has its outcome: done, or failed with its retries used up. (A
    cell between a failed try and its retry has no pending trial, yet has not ended.)"""
    tries: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        tries.setdefault(str(t.user_attrs["cell"]), []).append(t)
    for cell in study.cells:
        if cell.name == SEARCH_BASELINE:
            continue
        mine = tries.get(cell.name, [])
        if any(t.state in PENDING for t in mine) or not mine:
            return False
        if not any(t.state in DONE for t in mine) and not any(
            int(t.user_attrs.get("attempt", 1)) > MAX_RETRIES for t in mine
        ):
            return False
    return True


def _best(study: Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The COMPLETE search trials, best first (ties: the earlier trial)."""
    sign = -1.0 if study.spec.metric.goal == "maximize" else 1.0
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return sorted(done, key=lambda t: (sign * float(t.value or 0.0), t.number))


def choose_confirmation(study: Study, ostudy: optuna.Study) -> bool:
    """Once every search trial has ended, pick the `confirm_top` best and enqueue them on the
    other seeds. True when this call enqueued something. Safe to call from every worker at
    once: the choice is one INSERT on a (study, key) unique row, which only one can win."""
    search = study.search
    if search is None or not search.confirm_top or CONFIRMATION in ostudy.user_attrs:
        return False
    trials = _search_trials(study, ostudy)
    if not _search_ended(study, trials):
        return False
    best = _best(study, trials)[: search.confirm_top]
    choice = {
        "chosen_at": time.time(),
        "cells": [
            {"cell": str(t.user_attrs["cell"]), "params": dict(t.params), "value": t.value}
            for t in best
        ],
    }
    table = StudyUserAttributeModel.__table__
    try:
        with engine_of(ostudy).begin() as conn:
            conn.execute(
                sqlalchemy.insert(table).values(
                    study_id=ostudy._study_id, key=CONFIRMATION, value_json=json.dumps(choice)
                )
            )
    except sqlalchemy.exc.IntegrityError:  # another process chose first: its choice stands
        return False
    return sync_queue(ostudy, confirmation_pairs(study, ostudy)).enqueued > 0


SETTLE_S = 30.0  # how long other workers wait for the chosen confirmation to be enqueued


def confirmation_coming(study: Study, ostudy: optuna.Study) -> bool:
    """For a worker that found nothing to do: True when a confirmation was just enqueued (by
    this process) or is being enqueued by another, so the worker should look again."""
    if choose_confirmation(study, ostudy):
        return True
    chosen = ostudy.user_attrs.get(CONFIRMATION)
    if chosen is None or time.time() - float(chosen.get("chosen_at", 0.0)) > SETTLE_S:
        return False
    queued = {trial_key(t) for t in ostudy.get_trials(deepcopy=False)}
    if all((p.cell, p.seed) in queued for p in confirmation_pairs(study, ostudy)):
        return False
    time.sleep(1.0)
    return True
