"""One simulated Nova: its configuration, database, task timers and request recorder.

Owns their lifetime and the initial seeding; it must never answer HTTP itself.
"""

from __future__ import annotations

from novasim.config import SimConfig
from novasim.lifecycle import Lifecycle
from novasim.model import COMPUTE_HOSTS, InstanceAction, Server, now
from novasim.notify import Notifier, Publisher
from novasim.recorder import Recorder
from novasim.store import Store
from novasim.wire import new_request_id


class Sim:
    """The state one aiohttp application serves."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.store = Store()
        publisher = None
        if config.notify_url:
            publisher = Publisher(config.notify_url, config.notify_exchange, config.notify_topic)
            publisher.start()
        self.notifier = Notifier(publisher)
        self.lifecycle = Lifecycle(
            self.store, config.settle_delay, self.notifier.changed, self.notifier.gone
        )
        self.recorder = Recorder(config.max_recorded_requests)
        self._seed(config.seed)

    def _seed(self, per_project: int) -> None:
        """N ACTIVE servers for each seed project, named like realnova's."""
        for project in self.config.seed_projects:
            for index in range(per_project):
                server = self.store.new_server(
                    name=f"{project}-seed-{index}", project_id=project, user_id="seed"
                )
                self.activate(server)
                moment = now()
                request_id = new_request_id()
                server.actions.append(
                    InstanceAction("create", request_id, "seed", project, moment, moment)
                )
                self.store.add(server)

    def activate(self, server: Server) -> None:
        """A finished build: ACTIVE on a compute host, launched now."""
        server.vm_state = "active"
        server.task_state = None
        server.power_state = 1
        server.launched_at = now()
        server.host = COMPUTE_HOSTS[server.instance_number % len(COMPUTE_HOSTS)]
        server.touch()

    def seeded_ids(self) -> list[tuple[str, str]]:
        """(project, server id) pairs, like realnova's seed_servers.json."""
        return [(s.project_id, s.id) for s in self.store.servers.values() if s.user_id == "seed"]
