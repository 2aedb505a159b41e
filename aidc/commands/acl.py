"""`aidc acl`: a mosquitto password file, ACL and configuration for a site's four roles.

- `operator` may read the whole site and send commands;
- `viewer` may read the site's state and events, and nothing else;
- `core` may read and write the whole site;
- every agent logs in as its own agent id (`aidc agents --agent-logins`) and may publish
  births, deaths and telemetry only as itself, and read only its own assignments and
  commands and the core's status.

Passwords come from AIDC_ACL_<ROLE>_PASSWORD (ROLE: OPERATOR, VIEWER, CORE, AGENT) or are
generated; either way they are written to `secrets/<role>` (mode 600), never to argv or stdout.
"""

import argparse
import base64
import hashlib
import os
import secrets
from pathlib import Path

from aidc.commands.agents import CONNECTIONS, connection_ids
from aidc.commands.options import (
    DEFAULT_SITE,
    RACK_KIND_NAMES,
    Subcommands,
    add_site_source_options,
    positive,
    site_id,
)
from aidc.errors import UsageError
from protocols.topics import (
    LOGIN,
    SUBTREE,
    AgentTopic,
    agent_filter,
    command_topic,
    core_clock_topic,
    core_filter,
    core_status_topic,
    site_filter,
    state_filter,
)

ROLES = ("operator", "viewer", "core", "agent")
PBKDF2_ITERATIONS = 101
"""mosquitto_passwd's own count for its `$7$` (PBKDF2-SHA512) hashes."""


def password_hash(password: str, salt: bytes | None = None) -> str:
    """A password as mosquitto 2 stores it: `$7$iterations$salt$hash`, PBKDF2-SHA512."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return f"$7${PBKDF2_ITERATIONS}${'$'.join(encoded)}"


def acl_text(site: str) -> str:
    """The ACL of a site: what each role may read and write."""
    everything = site_filter(site)

    def own(kind: AgentTopic) -> str:
        return agent_filter(kind, site, agent=LOGIN)

    return f"""# aidc roles for site {site}: written by `aidc acl`
user core
topic readwrite {everything}

user operator
topic read {everything}
topic write {command_topic(site)}

user viewer
topic read {state_filter(site, SUBTREE)}
topic read {core_filter(site)}

# Every other login is an agent, named by its agent id: it speaks only for itself.
pattern write {own(AgentTopic.BIRTH)}
pattern write {own(AgentTopic.DEATH)}
pattern write {own(AgentTopic.TELEMETRY)}
pattern read {own(AgentTopic.ASSIGN)}
pattern read {own(AgentTopic.AGENTCMD)}
pattern read {core_status_topic(site)}
pattern read {core_clock_topic(site)}
"""


def config_text(directory: Path, port: int) -> str:
    """A mosquitto configuration that listens on `port` with this password file and ACL."""
    return (
        f"listener {port}\n"
        "allow_anonymous false\n"
        f"password_file {directory / 'passwd'}\n"
        f"acl_file {directory / 'acl'}\n"
    )


def _password(role: str) -> str:
    return os.environ.get(f"AIDC_ACL_{role.upper()}_PASSWORD") or secrets.token_urlsafe(18)


def write_acl(directory: Path, site: str, agents: list[str], port: int) -> dict[str, str]:
    """Write passwd, acl, mosquitto.conf and secrets/<role> under `directory`; the passwords."""
    passwords = {role: _password(role) for role in ROLES}
    directory.mkdir(parents=True, exist_ok=True)
    users = [(role, passwords[role]) for role in ROLES if role != "agent"]
    users += [(agent, passwords["agent"]) for agent in agents]
    (directory / "passwd").write_text("".join(f"{u}:{password_hash(p)}\n" for u, p in users))
    (directory / "acl").write_text(acl_text(site))
    (directory / "mosquitto.conf").write_text(config_text(directory, port))
    vault = directory / "secrets"
    vault.mkdir(mode=0o700, exist_ok=True)
    for role, password in passwords.items():
        path = vault / role
        path.write_text(password + "\n")
        path.chmod(0o600)
    return passwords


def add_parser(sub: Subcommands) -> None:
    """`aidc acl`."""
    acl = sub.add_parser(
        "acl",
        help="write a mosquitto password file and ACL for a site's roles",
        description="Write passwd, acl and mosquitto.conf for the roles operator (reads, "
        "commands), viewer (reads state), core (everything) and one login per agent (speaks "
        "only for itself). Passwords come from AIDC_ACL_<ROLE>_PASSWORD or are generated, "
        "and are written to OUT/secrets/.",
    )
    acl.add_argument("--site", type=site_id, default=DEFAULT_SITE, help="site id (default dc1)")
    acl.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    acl.add_argument("--port", type=positive(int), default=1883, help="listener port (1883)")
    add_site_source_options(acl, "N racks")
    acl.add_argument("--rack-kind", choices=RACK_KIND_NAMES, default="nvl72")
    acl.add_argument(
        "--connection",
        choices=CONNECTIONS,
        default="gateway",
        help="how the agents will connect (as `aidc agents --connection`): one login per "
        "gateway, rack or node (default gateway)",
    )
    acl.add_argument(
        "--shards",
        type=positive(int),
        default=1,
        metavar="N",
        help="fleet shards, each with its own gateway login (default 1)",
    )
    acl.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the files for `aidc acl` and say where they are and how to use them."""
    agents = connection_ids(args, args.shards)
    directory: Path = args.out
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory")
    reserved = set(ROLES) & set(agents)
    if reserved:
        raise UsageError(f"agent ids {sorted(reserved)} clash with role names")
    write_acl(directory, args.site, agents, args.port)
    print(
        f"aidc acl: {len(agents):,} agent logins and 3 roles for site {args.site} in {directory}; "
        f"run `mosquitto -c {directory / 'mosquitto.conf'}`; passwords are in "
        f"{directory / 'secrets'} (give them with --password-file)"
    )
    return 0
