"""The error a subcommand raises for input the user can fix: one sentence, exit code 2."""

from protocols.errors import AidcError


class UsageError(AidcError):
    """Bad input on the command line or in a file it names; `str()` says what and where."""

    exit_code = 2
