"""Size limits of the wire contract: a payload or list beyond them is rejected, not processed."""

KIB = 1024
MIB = 1024 * KIB

MAX_COMMAND_BYTES = 64 * KIB
"""An operator command or agent command, JSON or msgpack."""
MAX_BIRTH_BYTES = 4 * MIB
"""A birth: the inventory of every node behind one agent connection."""
MAX_TELEMETRY_BYTES = 8 * MIB
"""One telemetry batch or one assignment."""
MAX_STATE_BYTES = 32 * MIB
"""One fleet state view, event batch or reply (rack views of a million-GPU site fit)."""
MAX_SMALL_BYTES = 4 * KIB
"""Death and core status messages."""

MAX_NODES_PER_AGENT = 1024
"""Nodes one agent connection may speak for."""
MAX_DEVICES_PER_NODE = 1024
"""GPUs, NICs, LPU chips or switch ports in one node's inventory."""
MAX_COMMAND_TARGETS = 4096
"""Nodes named in one cordon, uncordon, drain or reboot."""
MAX_ROUTE_POOLS = 256
"""Pools in one route."""
MAX_RACKS = 65536
"""Racks in one RackStates view."""
MAX_QUERY_ROWS = 1000
"""Rows (nodes, events, commands) one query may ask for."""
MAX_READINGS = 256
"""Gauges or counters of one device in a node's detail."""
MAX_LIST = 65536
"""Any other list in a message (events, pools, ports)."""
MAX_TEXT = 1024
"""A free-text string: a reason, an error sentence, a model name."""
