"""The fault table the core checks commands against (protocols.faults) says what the
agents' device banks really take: the same kinds, device parameters and parameters."""

import pytest

from agents.bank import DeviceBank
from agents.gpu import GpuBank
from agents.groups import RANDOM_FAULT_KINDS
from agents.lpu import LpuBank
from agents.nic import NicBank
from agents.switch import SwitchBank
from protocols.faults import DEVICE_FAULTS, DEVICE_PARAMS, FAULT_DEVICES, FAULT_PARAMS


@pytest.mark.parametrize(
    ("device", "bank"), [("gpu", GpuBank), ("nic", NicBank), ("port", SwitchBank), ("lpu", LpuBank)]
)
def test_each_bank_takes_what_the_table_says(device: str, bank: type[DeviceBank]) -> None:
    assert bank.device_param == DEVICE_PARAMS[device]
    assert set(bank.faults) == {kind for kind, hits in FAULT_DEVICES.items() if device in hits}
    for kind, spec in bank.faults.items():
        assert set(spec) == set(FAULT_PARAMS[kind]), kind


def test_the_faults_a_fleet_draws_at_random_are_the_tables_device_faults() -> None:
    assert list(DEVICE_FAULTS) == RANDOM_FAULT_KINDS
