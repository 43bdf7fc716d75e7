"""Rules whose problems the loader finds while reading files; documented here."""

from ast_pbx.config.problems import Level
from ast_pbx.lint.registry import loader_rule

loader_rule(
    "yaml-syntax",
    Level.ERROR,
    """
    The file is not valid YAML (or not UTF-8, or uses an unknown tag, a recursive alias,
    or an alias bomb, or nests collections more than 100 levels deep).

    Reported at the position where the parser stopped; the rest of that file is not read.
""",
)
loader_rule(
    "file-unreadable",
    Level.ERROR,
    """
    A config file could not be read (permissions, a broken link), or a directory of the
    config could not be listed: the files in it are missing from the configuration.
""",
)
loader_rule(
    "duplicate-key",
    Level.ERROR,
    """
    A key appears twice in one mapping.

    YAML would silently keep only one of the two values; astpbx refuses to guess which
    one was meant. Reported at the second occurrence.
""",
)
loader_rule(
    "schema",
    Level.ERROR,
    """
    A value does not fit the JSON Schema of the config language: wrong type, a required
    key missing, a number that is not digits, '*' and '#', an unknown enum value.

    `astpbx schema` prints the schema; point your editor's YAML language server at it to
    see these while typing.
""",
)
loader_rule(
    "unknown-key",
    Level.ERROR,
    """
    A key that the config language does not have, usually a typo (`pasword:`), or an unknown
    top-level section. The message lists the keys allowed at that place.
""",
)
loader_rule(
    "duplicate-section",
    Level.ERROR,
    """
    A mapping section (system, dialer, transfer, directory) is given in more than one file.

    List sections may be split across files; mapping sections may not, because merging two
    half-sections silently is how settings get lost. The message names both places.
""",
)
loader_rule(
    "env-unset",
    Level.WARNING,
    """
    A `${VAR}` reference names an environment variable that is not set and has no default.

    A warning for `check`, which runs in CI without secrets; `apply` and `run` refuse the
    config. Write `${VAR:-default}` to give a default; `$${` writes a literal `${`.
""",
)
loader_rule(
    "internal-error",
    Level.ERROR,
    """
    A rule of astpbx itself failed on this config. The other rules still ran; please report
    the message and the config that caused it.
""",
)
