"""The one error hierarchy of astpbx and the exit codes it maps to.

Config problems are not exceptions: the loader and the linter collect them as
`Problem` values so that one run reports all of them. Exceptions are for what
stops a command: bad usage, an invalid config handed to a command that needs a
valid one, an outside system that is not there.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


class AstPbxError(Exception):
    """Base of every error astpbx raises on purpose; the CLI prints it without a traceback."""

    exit_code = EXIT_USAGE


class UsageError(AstPbxError):
    """The command line names something that does not exist or makes no sense."""


class ConfigInvalid(AstPbxError):
    """A command that needs a valid config was given one with errors."""

    exit_code = EXIT_PROBLEMS

    def __init__(self, message: str, problems: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems
