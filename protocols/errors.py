"""The root of the errors aidc raises on purpose, and the one error type every decoder raises
for a payload it cannot accept."""


class AidcError(Exception):
    """An error aidc raises on purpose, for something a user or a peer can cause; `str()` is
    one sentence saying what happened. `exit_code` is what the command line exits with."""

    exit_code = 1


class MessageError(AidcError, ValueError):
    """A payload that is not a valid message of the expected kind; `str()` says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"malformed {kind}: {reason}")
        self.kind = kind
        self.reason = reason
