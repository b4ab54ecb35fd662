"""The queue's own changes to trials, without workers."""

from pathlib import Path

import optuna

from ablate.design import Pair
from ablate.study import Outcome, Queue
from ablate.study._optuna import open_storage


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
