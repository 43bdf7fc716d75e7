"""The semantic rules of `check`, one module per theme; importing this registers them all."""

from ast_pbx.lint.rules import (  # noqa: F401  (imported for their registrations)
    flow,
    loading,
    loops,
    numbers,
    references,
    regexes,
    secrets,
    storage,
    timing,
)
