"""Training one trial: the `fit` loop and evaluation."""

from ablate.train.fit import EpochResult, FitResult, autocast_for, evaluate, fit

__all__ = ["EpochResult", "FitResult", "autocast_for", "evaluate", "fit"]
