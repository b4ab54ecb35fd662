"""The queue's own changes to trials, without workers."""

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import optuna

from ablate.design import Design, Pair, Round
from ablate.study import Outcome, Queue, TrialRecord
from ablate.study._optuna import open_storage
from ablate.study._queue import SETTLE_POLL_S, SETTLE_S


def _queue(tmp_path: Path) -> Queue:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    return Queue(optuna.create_study(study_name="q", storage=open_storage(url)), url)


def test_an_abandoned_trial_ends_killed_and_is_requeued_once_as_a_lost_try(
    tmp_path: Path,
) -> None:
    """A worker stopped by SIGTERM (a preempted or cancelled job) or Ctrl-C: the workers still
    running, on other machines, train the pair without a new `ablate run`."""
    queue = _queue(tmp_path)
    queue.enqueue(Pair("cell", 0, {"loss.aux.weight": 0.4}), attempt=1)
    trial_id = queue.pop()
    assert trial_id is not None

    queue.abandon(trial_id, "interrupted (SIGTERM)")
    queue.abandon(trial_id, "interrupted (SIGTERM)")  # a second stop changes nothing

    killed, retry = queue.records()
    assert (killed.outcome, killed.error) == (Outcome.KILLED, "interrupted (SIGTERM)")
    assert (retry.state, retry.key, retry.attempt, retry.lost) == ("WAITING", ("cell", 0), 2, 1)
    assert retry.overrides == {"loss.aux.weight": 0.4}
    assert queue.pop() == retry.trial_id


class _OneRound:
    """A design whose records call for one round of two seeds of cell `b`, chosen once."""

    def next_round(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Round:
        return Round("round:b", (Pair("b", 1, {}), Pair("b", 2, {})), {"why": "undecided"})


def test_a_round_is_recorded_and_enqueued_once(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    design = cast(Design, _OneRound())
    assert queue.advance(design)  # recorded and enqueued here
    assert queue.attrs["round:b"]["why"] == "undecided"
    assert not queue.advance(design)  # every pair of it is queued: nothing to add
    assert sorted(r.key for r in queue.records()) == [("b", 1), ("b", 2)]


def test_an_idle_worker_waits_while_another_process_enqueues_a_round(tmp_path: Path) -> None:
    """Recorded by another process a moment ago, its trials not yet queued: look again (True,
    after a pause), and enqueue nothing, so no seed is queued twice."""
    queue = _queue(tmp_path)
    queue.ostudy.set_user_attr("round:b", {"why": "undecided", "claimed_at": time.time()})
    started = time.monotonic()
    assert queue.advance(cast(Design, _OneRound()))
    assert time.monotonic() - started >= SETTLE_POLL_S * 0.9
    assert queue.records() == []


def test_a_round_whose_recorder_died_is_left_to_the_next_run(tmp_path: Path) -> None:
    """Recorded over SETTLE_S ago and still not queued: its process died. The workers stop
    looking; the next `ablate run` syncs the design's pairs."""
    queue = _queue(tmp_path)
    claimed = time.time() - SETTLE_S - 1
    queue.ostudy.set_user_attr("round:b", {"why": "undecided", "claimed_at": claimed})
    assert not queue.advance(cast(Design, _OneRound()))
    assert queue.records() == []
