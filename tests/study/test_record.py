"""A trial record reads back exactly what the engine stored, whatever the outcome."""

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from ablate.study import Outcome, TrialResult, _record
from ablate.study._optuna import Store


def _stored(outcome: Outcome, **kwargs) -> _record.TrialRecord:
    attrs = _record.enqueued("a", 3, {"loss.aux.weight": 0.4}, 2, sampled=False)
    state, ended = _record.ended(outcome, **kwargs)
    value = 0.5 if outcome == Outcome.COMPLETE else None
    study = optuna.create_study()
    study.add_trial(create_trial(state=state, value=value, user_attrs=attrs | ended))
    (record,) = _record.records(Store(study).trials())
    return record


@pytest.mark.parametrize("outcome", list(Outcome))
def test_every_outcome_reads_back_as_itself(outcome: Outcome) -> None:
    result = TrialResult(history=[{"val/mIoU": 0.5}], final={"val/mIoU": 0.5}, total_steps=8)
    record = _stored(outcome, result=result, error="why" if not outcome.done else "")
    assert record.outcome == outcome and not record.pending
    assert record.key == ("a", 3) and record.attempt == 2
    assert record.overrides == {"loss.aux.weight": 0.4}
    assert record.result.final == {"val/mIoU": 0.5} and record.result.total_steps == 8
    assert record.done == (outcome in (Outcome.COMPLETE, Outcome.DIVERGED))
    assert record.state == {"complete": "COMPLETE", "diverged": "DIVERGED"}.get(
        outcome.value, {"failed": "FAIL", "killed": "KILLED"}.get(outcome.value)
    )


def test_a_failed_try_with_no_retry_left_has_given_up() -> None:
    assert not _stored(Outcome.FAILED, error="boom").gave_up  # attempt 2 of 3
    attrs = _record.enqueued("a", 0, {}, _record.MAX_RETRIES + 1, sampled=False)
    state, ended = _record.ended(Outcome.FAILED, error="boom")
    study = optuna.create_study()
    study.add_trial(create_trial(state=state, user_attrs=attrs | ended))
    (record,) = _record.records(Store(study).trials())
    assert record.gave_up and not record.done


def test_an_older_study_s_trial_without_a_value_reads_as_failed() -> None:
    attrs = _record.enqueued("a", 0, {}, 1, sampled=False) | {"outcome": "no-value"}
    study = optuna.create_study()
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=attrs))
    (record,) = _record.records(Store(study).trials())
    assert record.outcome == Outcome.FAILED


def test_waiting_and_running_trials_have_no_outcome_and_foreign_trials_no_record() -> None:
    study = optuna.create_study()
    study.enqueue_trial({}, user_attrs=_record.enqueued("a", 0, {}, 1, sampled=True))
    study.add_trial(create_trial(value=1.0))  # not enqueued by ablate
    (waiting,) = _record.records(Store(study).trials())
    assert waiting.outcome is None and waiting.state == "WAITING" and waiting.sampled


def _ended(outcome: Outcome, attempt: int, lost: int) -> _record.TrialRecord:
    attrs = _record.enqueued("a", 0, {}, attempt, sampled=False, lost=lost)
    state, ended = _record.ended(outcome, error="why")
    study = optuna.create_study()
    study.add_trial(create_trial(state=state, user_attrs=attrs | ended))
    (record,) = _record.records(Store(study).trials())
    return record


def test_a_try_lost_with_its_worker_uses_no_retry_until_max_lost() -> None:
    """kill -9 of a whole study three times while one pair trains (CI saw this): the pair must
    still be tried, whatever its crash budget."""
    lost_thrice = _ended(Outcome.KILLED, attempt=3, lost=2)
    assert lost_thrice.next_try() == (4, 3) and not lost_thrice.gave_up
    assert _ended(Outcome.FAILED, attempt=4, lost=3).next_try() == (5, 3)  # 1st crash
    last_crash = _ended(Outcome.FAILED, attempt=_record.MAX_RETRIES + 4, lost=3)
    assert last_crash.next_try() is None and last_crash.gave_up
    too_often = _ended(Outcome.KILLED, attempt=9, lost=_record.MAX_LOST)
    assert too_often.next_try() is None and too_often.gave_up
    assert _ended(Outcome.KILLED, attempt=9, lost=_record.MAX_LOST - 1).next_try() == (
        10,
        _record.MAX_LOST,
    )
