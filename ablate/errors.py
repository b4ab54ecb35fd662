"""The errors a user causes, each meant to be read: the CLI prints its message and exits 2.

They live here, with no imports, so the CLI can catch them without importing torch or MLflow.
"""


class UserError(ValueError):
    """Bad input from the user: a file, a key, a value, a URL. The message says what and where."""


class SpecError(UserError):
    """A study file (or an override) that cannot be run."""


class ModelContractError(UserError):
    """A model whose outputs break the contract (`out`, `aux`, `embed`)."""


class DatasetError(UserError):
    """A dataset folder that is missing, empty or not in the expected layout."""


class StorageError(UserError):
    """A study storage ablate cannot use: an Optuna release or table layout it was not
    written for."""
