"""The one error a subcommand raises for input the user can fix: one sentence, exit code 2."""


class UsageError(Exception):
    """Bad input on the command line or in a file it names; `str()` says what and where."""
