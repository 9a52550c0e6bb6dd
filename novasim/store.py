"""The simulator's database: servers by id and by project, floating IPs and images.

Owns O(1) lookups, project visibility and address allocation; it must never answer
HTTP nor decide what an action does to a server.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Iterator

from novasim.identity import Caller
from novasim.model import LAB_IMAGE, Address, Server

PRIVATE_NETWORK = "private"
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def generate_password(length: int = 12) -> str:
    """nova.utils.generate_password's shape: 12 letters and digits."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


class Store:
    """All servers, indexed for the lookups Nova makes on every request."""

    def __init__(self) -> None:
        self.servers: dict[str, Server] = {}
        # Insertion-ordered per project, so listing needs no sort (newest last).
        self._by_project: dict[str, dict[str, Server]] = {}
        self.floating_ips: dict[str, str] = {}  # address -> server id
        self.images: dict[str, str] = {}  # snapshot id -> name
        self._instances = 0
        self._addresses = 0

    def add(self, server: Server) -> Server:
        self.servers[server.id] = server
        self._by_project.setdefault(server.project_id, {})[server.id] = server
        return server

    def remove(self, server_id: str) -> None:
        server = self.servers.pop(server_id, None)
        if server is None:
            return
        self._by_project.get(server.project_id, {}).pop(server_id, None)
        for address in [a.addr for a in server.addresses if a.kind == "floating"]:
            self.floating_ips.pop(address, None)

    def visible(self, server_id: str, caller: Caller) -> Server | None:
        """Nova's project-filtered lookup: admins see every project, others their own."""
        server = self.servers.get(server_id)
        if server is None:
            return None
        if caller.is_admin or server.project_id == caller.project_id:
            return server
        return None

    def listing(self, project_id: str | None) -> Iterator[Server]:
        """Servers newest first (Nova sorts by created_at desc); all projects for None."""
        if project_id is None:
            return reversed(list(self.servers.values()))
        return reversed(list(self._by_project.get(project_id, {}).values()))

    def new_server(
        self,
        *,
        name: str,
        project_id: str,
        user_id: str,
        flavor_id: str = "1",
        image_ref: str = LAB_IMAGE,
        with_network: bool = True,
        server_id: str | None = None,
    ) -> Server:
        """A server as Nova has it right after the API accepted its creation."""
        self._instances += 1
        server = Server(
            id=server_id or str(uuid.uuid4()),
            name=name,
            project_id=project_id,
            user_id=user_id,
            flavor_id=flavor_id,
            image_ref=image_ref,
            hostname=_hostname(name),
            instance_number=self._instances,
            reservation_id="r-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(8)),
        )
        if not image_ref:
            server.boot_volume_id = str(uuid.uuid4())
        if with_network:
            server.addresses.append(self.fixed_address())
            server.security_groups.append("default")
        return server

    def fixed_address(self, network: str = PRIVATE_NETWORK) -> Address:
        self._addresses += 1
        number = self._addresses
        octets = (number >> 16) & 0xFF, (number >> 8) & 0xFF, number & 0xFF
        return Address(
            network=network,
            addr=f"192.168.{1 + number // 250}.{2 + number % 250}",
            version=4,
            kind="fixed",
            mac="fa:16:3e:{:02x}:{:02x}:{:02x}".format(*octets),
        )

    def add_image(self, name: str) -> str:
        image_id = str(uuid.uuid4())
        self.images[image_id] = name
        return image_id


def _hostname(name: str) -> str:
    """Nova's sanitize_hostname, simplified: lower-case, [a-z0-9-], at most 63 chars."""
    cleaned = "".join(c if c.isalnum() and c.isascii() else "-" for c in name.lower())
    return cleaned.strip("-")[:63] or "server"
