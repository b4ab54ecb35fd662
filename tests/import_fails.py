"""A user model module that raises while it is imported, for tests/test_bad_input.py."""

raise RuntimeError("set MY_MODELS_HOME before importing this module")
