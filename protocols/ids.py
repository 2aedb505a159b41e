"""Identifier rules for sites, racks, nodes, agents, pools, models and command ids."""

import re
from typing import Annotated

from msgspec import Meta

ID_MAX_LENGTH = 63
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}\Z"
COMMAND_ID_MAX_LENGTH = 64
COMMAND_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}\Z"

_ID = re.compile(ID_PATTERN)
_COMMAND_ID = re.compile(COMMAND_ID_PATTERN)

EntityId = Annotated[
    str,
    Meta(
        pattern=ID_PATTERN,
        description="lowercase letters, digits and '-', starting with a letter or digit, "
        f"at most {ID_MAX_LENGTH} characters",
    ),
]
"""A site, rack, node, agent, switch, pool or model id: safe as one MQTT topic level."""

CommandId = Annotated[
    str,
    Meta(
        pattern=COMMAND_ID_PATTERN,
        description="letters, digits, '_', '.' and '-', "
        f"at most {COMMAND_ID_MAX_LENGTH} characters",
    ),
]
"""A client-chosen command id: safe as one MQTT topic level (it names the reply topic)."""


def check_id(value: str, what: str = "id") -> str:
    """Return `value` if it is a valid entity id, else raise ValueError saying why."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(
            f"{what} {value!r} is not valid: use lowercase letters, digits and '-' "
            f"(at most {ID_MAX_LENGTH} characters, not starting with '-')"
        )
    return value


def check_command_id(value: str) -> str:
    """Return `value` if it is a valid command id, else raise ValueError saying why."""
    if not isinstance(value, str) or not _COMMAND_ID.match(value):
        raise ValueError(
            f"command id {value!r} is not valid: use letters, digits, '_', '.' and '-' "
            f"(1 to {COMMAND_ID_MAX_LENGTH} characters)"
        )
    return value
