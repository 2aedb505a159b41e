"""What an operator does to nodes, shared by the nodes list and one node's view: cordon,
uncordon, drain, reboot, and faults for drills; each confirmed, then sent."""

from typing import ClassVar

from textual.binding import Binding

from protocols.commands import ClearFault, Cordon, Drain, InjectFault, Reboot, Uncordon
from tui.dialogs.drain import DrainDialog
from tui.dialogs.fault import ClearFaultDialog, FaultDialog
from tui.messages import SendCommand
from tui.validate import command
from tui.view import View


class NodeActionsView(View):
    """A view with nodes under the cursor (or marked); `targets` names them."""

    BINDINGS: ClassVar = [
        Binding("c", "cordon", "Cordon", id="node-cordon"),
        Binding("u", "uncordon", "Uncordon", id="node-uncordon"),
        Binding("d", "drain", "Drain", id="node-drain"),
        Binding("R", "reboot", "Reboot", id="node-reboot"),
        Binding("f", "fault", "Inject fault", id="node-fault"),
        Binding("F", "clear_fault", "Clear fault", id="node-clear-fault"),
    ]
    MUTATIONS = frozenset({"cordon", "uncordon", "drain", "reboot", "fault", "clear_fault"})

    def targets(self) -> list[str]:
        """The nodes an action applies to: the marked ones, else the one under the cursor."""
        raise NotImplementedError

    def pools_of(self, nodes: list[str]) -> set[str] | None:
        """The pools with replicas on these nodes, or None if the core does not say."""
        return None

    def kind_of(self, node: str) -> str:
        """What kind of node it is (gpu, lpu or switch), as the core says; gpu if unknown."""
        return "gpu"

    def _new_id(self) -> str:
        return self.host.bridge.new_id()

    def _send(self, command: Cordon | Uncordon | Reboot, confirmed: bool = False) -> None:
        self.post_message(SendCommand(command, confirmed))

    def _targets_or_say(self) -> list[str]:
        nodes = self.targets()
        if not nodes:
            self.notify("No node here to act on.", severity="warning")
        return nodes

    def action_cordon(self) -> None:
        if nodes := self._targets_or_say():
            self._send(command(Cordon, id=self._new_id(), nodes=nodes, reason="from aidc tui"))

    def action_uncordon(self) -> None:
        if nodes := self._targets_or_say():
            self._send(command(Uncordon, id=self._new_id(), nodes=nodes))

    def action_reboot(self) -> None:
        if nodes := self._targets_or_say():
            self._send(command(Reboot, id=self._new_id(), nodes=nodes))

    def action_drain(self) -> None:
        if nodes := self._targets_or_say():
            pools = self.picture.pools.pools if self.picture.pools else []
            dialog = DrainDialog(nodes, pools, self._new_id, affected=self.pools_of(nodes))
            self.app.push_screen(dialog, self._confirmed)

    def _confirmed(self, order: Drain | InjectFault | ClearFault | None) -> None:
        if order is not None:
            self.post_message(SendCommand(order, confirmed=True))

    def action_fault(self) -> None:
        if nodes := self._targets_or_say():
            dialog = FaultDialog(nodes[0], self._new_id, self.kind_of(nodes[0]))
            self.app.push_screen(dialog, self._confirmed)

    def action_clear_fault(self) -> None:
        if nodes := self._targets_or_say():
            self.app.push_screen(ClearFaultDialog(nodes[0], self._new_id), self._confirmed)
