"""One API request after authentication and microversion negotiation: what every
resource handler reads.

Owns the shape of that context and the checks every resource shares (body decoding,
the URL project id, server lookup); it must never run an action or build a view.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from multidict import MultiMapping

from novasim.faults import Fault, malformed_body
from novasim.identity import Caller
from novasim.microversion import Version
from novasim.model import Server
from novasim.sim import Sim
from novasim.views import ViewContext

NOT_FOUND = "Instance {id} could not be found."


@dataclass(frozen=True)
class ApiCall:
    """Everything known about a request once it reached a resource."""

    sim: Sim
    request_id: str
    caller: Caller
    version: Version
    method: str
    body: bytes
    query: MultiMapping[str]
    url_project: str | None  # the {project_id} path segment, if the URL had one
    view: ViewContext
    global_request_id: str | None = None  # the caller's X-OpenStack-Request-ID, if valid

    def decode_body(self) -> Any:
        """Nova's deserialisation of a POST/PUT body: JSON, or {} when empty."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is a ValueError too
            raise malformed_body() from None

    def check_url_project(self) -> None:
        """Nova's check that a project id in the URL is the token's."""
        if self.url_project and self.url_project != self.caller.project_id:
            raise Fault(
                400,
                f"Malformed request URL: URL's project_id '{self.url_project}' doesn't "
                f"match Context's project_id '{self.caller.project_id}'",
            )

    def server(self, server_id: str, unknown: str = NOT_FOUND) -> Server:
        """The server as the caller may see it; another project's is 404 to non-admins.

        ``unknown`` is the text for an id that names no server at all (some controllers
        read the cell mapping first and say so).
        """
        server = self.sim.store.visible(server_id, self.caller)
        if server is None:
            known = server_id in self.sim.store.servers
            raise Fault(404, (NOT_FOUND if known else unknown).format(id=server_id))
        return server
