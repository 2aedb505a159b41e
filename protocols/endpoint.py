"""Where a broker is and how to log in: parsed from `mqtt://[user@]host:port` or `mqtts://...`."""

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Endpoint:
    """An MQTT broker address with its credentials; the password never appears in repr."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    mqtt5: bool | None = None
    """True or False when known; None lets the link try MQTT 5 and fall back to 3.1.1."""

    @property
    def url(self) -> str:
        """The URL, without the password."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def parse_broker_url(
    url: str, *, password: str | None = None, ca_file: str | None = None
) -> Endpoint:
    """Parse a broker URL; raise ValueError with one sentence saying what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"broker URL {url!r} is not valid: {error}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"broker {url!r} is not 'embedded', 'mosquitto' or an mqtt:// or mqtts:// URL"
        )
    if parts.password is not None:
        raise ValueError(
            "put the broker password in AIDC_MQTT_PASSWORD or a --password-file, not in the URL"
        )
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"broker URL {url!r} must be only scheme://[user@]host[:port]")
    host = parts.hostname
    if ":" in host:
        ipaddress.IPv6Address(host)
    return Endpoint(
        host=host,
        port=port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        username=parts.username or None,
        password=password,
        ca_file=ca_file,
    )
