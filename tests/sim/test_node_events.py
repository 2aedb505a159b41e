"""Which events a node's detail lists: those whose subject names the node as a whole segment."""

import pytest

from sim.service import is_about


@pytest.mark.parametrize(
    ("subject", "node", "about"),
    [
        ("r001-n01", "r001-n01", True),
        ("gpu/r001-n01/3", "r001-n01", True),
        ("nic/r001-n01/0", "r001-n01", True),
        ("gpu/r001-n010/3", "r001-n01", False),
        ("r001-n010", "r001-n01", False),
        ("control", "r001-n01", False),
        ("pool/llama-70b-h100", "r001-n01", False),
    ],
)
def test_an_event_is_about_a_node_only_when_its_subject_names_it(
    subject: str, node: str, about: bool
) -> None:
    assert is_about(subject, node) is about
