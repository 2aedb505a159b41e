"""Textual messages between the bridge, the views and the app."""

from dataclasses import dataclass

from textual.message import Message

from protocols.commands import OperatorCommand, Reply
from tui.command_line import GoTo


class PictureChanged(Message):
    """Some state view changed; the app repaints what is dirty. Many in a row become one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PictureChanged)


@dataclass
class SendCommand(Message):
    """Send an operator command; ask first unless the operator already confirmed it in a
    dialog that showed exactly what it will do."""

    command: OperatorCommand
    confirmed: bool = False


@dataclass
class CommandAnswered(Message):
    """The core answered a command this console sent."""

    command: OperatorCommand
    reply: Reply


@dataclass
class OpenView(Message):
    """Show a view (with its filter, node or metric)."""

    target: GoTo
