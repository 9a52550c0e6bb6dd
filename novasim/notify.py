"""Nova's versioned notifications, published by the simulator as Nova 34 publishes them.

Owns the message shapes (``instance.update`` with InstanceUpdatePayload 2.1, ``instance.lock``
and the other InstanceActionPayload 1.9 events, oslo.messaging's 2.0 envelope) and the thread
that publishes them to RabbitMQ (exchange ``nova``, topic ``versioned_notifications``, routed
``.info``, or ``.error`` for a failure); it must never block the event loop, nor import the
gateway.

Nova sends ``instance.update`` for every vm/task state change (``notify_on_state_change =
vm_and_task_state``) and for a lock or unlock, then the action's own event; the context
names the caller of the request that caused it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import queue
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from novasim.identity import Caller
from novasim.model import FLAVORS, Server, isotime, now

EXCHANGE = "nova"
TOPIC = "versioned_notifications"
MAX_QUEUED = 10_000  # messages waiting for the publishing thread; more are dropped
# nova/objects/fields.py PowerState values by nova/compute/power_state.py index.
POWER_STATES = {
    0: "pending",
    1: "running",
    3: "paused",
    4: "shutdown",
    6: "crashed",
    7: "suspended",
}
# The notification names Nova gives an action that runs a task, step by step (the rest send
# only updates): nova/compute/manager.py's notify_about_instance_action calls. Every step
# but the last starts and ends when the task begins; the last ends when it settles.
ACTION_EVENTS: dict[str, tuple[str, ...]] = {
    "pause": ("pause",),
    "unpause": ("unpause",),
    "os-stop": ("power_off",),
    "os-start": ("power_on",),
    "reboot": ("reboot",),
    "suspend": ("suspend",),
    "resume": ("resume",),
    "rescue": ("rescue",),
    "unrescue": ("unrescue",),
    "shelve": ("shelve",),
    "shelveOffload": ("shelve_offload",),
    "unshelve": ("unshelve",),
    "rebuild": ("rebuild",),
    "resize": ("resize_prep", "resize", "resize_finish"),
    "migrate": ("resize_prep", "resize", "resize_finish"),
    "confirmResize": ("resize_confirm",),
    "revertResize": ("resize_revert",),
    "createImage": ("snapshot",),
    "createBackup": ("snapshot",),
    "delete": ("delete",),
}
API_EVENTS = frozenset({"lock", "unlock"})  # done by nova-api: one event, no phase


@dataclass(frozen=True)
class Context:
    """The request context Nova copies into a notification (``_context_*``)."""

    user_id: str
    project_id: str | None
    roles: tuple[str, ...]
    request_id: str
    global_request_id: str | None = None  # the caller's X-OpenStack-Request-ID, if valid


@dataclass
class Acting:
    """The action a request started on a server, as far as its events went."""

    steps: tuple[str, ...]
    started: bool = False
    fault: dict[str, Any] | None = None  # an ExceptionPayload: it ends in .error


def amqp_url(transport_url: str) -> str:
    """kombu's form of an oslo.messaging URL (``rabbit://u:p@host:5672/`` → ``amqp://``)."""
    parts = urlsplit(transport_url)
    scheme = {"rabbit": "amqp", "amqp": "amqp", "amqps": "amqps"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"not a RabbitMQ transport URL scheme: {parts.scheme!r}")
    vhost = parts.path[1:] or "%2F"
    return f"{scheme}://{parts.netloc}/{vhost}"


class Publisher:
    """Publishes messages in order from one thread (kombu), reconnecting as needed."""

    def __init__(self, transport_url: str, exchange: str = EXCHANGE, topic: str = TOPIC) -> None:
        self._url = amqp_url(transport_url)
        self._exchange = exchange
        self._topic = topic
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.published = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="novasim-notify", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)  # after everything already sent to it
            thread.join(timeout)
            self._stopping.set()  # the broker is away: give up what is left
            thread.join(1.0)

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        import kombu

        exchange = kombu.Exchange(self._exchange, type="topic", durable=False)
        item = self._queue.get()
        while item is not None and not self._stopping.is_set():
            try:
                with kombu.Connection(self._url, connect_timeout=2) as connection:
                    channel = connection.channel()
                    exchange(channel).declare()
                    producer = kombu.Producer(channel, exchange=exchange)
                    while item is not None:
                        producer.publish(
                            envelope(item),
                            # oslo.messaging's notifier routes by <topic>.<priority>.
                            routing_key=f"{self._topic}.{str(item['priority']).lower()}",
                            content_type="application/json",
                            retry=False,
                        )
                        self.published += 1
                        item = self._queue.get()
            except Exception:  # the broker is away: keep the message, try again shortly
                self._stopping.wait(0.2)


def envelope(message: dict[str, Any]) -> str:
    """oslo.messaging's message format 2.0, as its messagingv2 notifier sends it."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)})


class Notifier:
    """What the simulator calls where a server changes; silent without a publisher."""

    def __init__(self, publisher: Publisher | None, host: str = "novasim") -> None:
        self.publisher = publisher
        self.host = host
        self._contexts: dict[str, Context] = {}
        self._actions: dict[str, Acting] = {}  # by server
        self._last: dict[str, tuple[Any, ...]] = {}

    @property
    def enabled(self) -> bool:
        return self.publisher is not None

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()

    def acting(
        self,
        server: Server,
        caller: Caller,
        request_id: str,
        action: str | None,
        global_request_id: str | None = None,
    ) -> None:
        """A request now acts on ``server`` (action key, ``delete``, or None): it is the
        context of what follows, and the action's own events are sent with its changes."""
        if not self.enabled:
            return
        roles = tuple(sorted(caller.roles))
        self._contexts[server.id] = Context(
            caller.user_id, caller.project_id, roles, request_id, global_request_id
        )
        steps = ACTION_EVENTS.get(action or "") or ((action,) if action in API_EVENTS else ())
        if steps:
            self._actions[server.id] = Acting(steps)
        else:
            self._actions.pop(server.id, None)

    def failing(self, server: Server, exception: str, text: str, function: str) -> None:
        """The compute will fail the action under way: its last event is ``.error``."""
        acting = self._actions.get(server.id)
        if acting is not None:
            acting.fault = fault_payload(exception, text, function)

    def changed(self, server: Server) -> None:
        """``instance.update`` if a state or the lock changed since the last one, then the
        action's event: ``instance.lock``/``unlock``, ``instance.<name>.start``/``.end``."""
        if not self.enabled:
            return
        snapshot = _snapshot(server)
        old = self._last.get(server.id)
        if snapshot == old:
            return
        self._last[server.id] = snapshot
        self._send("instance.update", server, "InstanceUpdatePayload", old)
        acting = self._actions.get(server.id)
        if acting is None or acting.steps == ("delete",):
            return
        *early, last = acting.steps
        if last in API_EVENTS:
            self._send(f"instance.{last}", server, "InstanceActionPayload", None)
            del self._actions[server.id]
            return
        if not acting.started:
            for step in early:
                self._send(f"instance.{step}.start", server, "InstanceActionPayload", None)
                self._send(f"instance.{step}.end", server, "InstanceActionPayload", None)
            self._send(f"instance.{last}.start", server, "InstanceActionPayload", None)
            acting.started = True
        if server.task_state is None:
            phase = "error" if acting.fault is not None else "end"
            self._send(
                f"instance.{last}.{phase}", server, "InstanceActionPayload", None, acting.fault
            )
            del self._actions[server.id]

    def gone(self, server: Server) -> None:
        """Nova deleted the server: ``instance.delete.end``, then it is forgotten."""
        if not self.enabled:
            return
        self._send("instance.delete.end", server, "InstanceActionPayload", None)
        for memory in (self._contexts, self._actions, self._last):
            memory.pop(server.id, None)

    def _send(
        self,
        event: str,
        server: Server,
        name: str,
        old: tuple[Any, ...] | None,
        fault: dict[str, Any] | None = None,
    ) -> None:
        assert self.publisher is not None
        context = self._contexts.get(server.id) or Context(
            "nova", None, (), "req-" + str(uuid.uuid4())
        )
        self.publisher.send(message(event, server, name, context, self.host, old, fault))


def _snapshot(server: Server) -> tuple[Any, ...]:
    return (server.vm_state, server.task_state, server.locked, server.locked_reason)


def message(
    event_type: str,
    server: Server,
    payload_name: str,
    context: Context,
    host: str,
    old: tuple[Any, ...] | None = None,
    fault: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One notification message as oslo.messaging delivers it (before the envelope); with
    ``fault`` an ERROR one (an action's ``.error``)."""
    moment = now()
    service = "nova-api" if event_type in ("instance.lock", "instance.unlock") else "nova-compute"
    return {
        **_context_fields(context, moment),
        "_unique_id": uuid.uuid4().hex,
        "event_type": event_type,
        "message_id": str(uuid.uuid4()),
        "payload": {
            "nova_object.data": payload(server, payload_name, context, old, fault),
            "nova_object.name": payload_name,
            "nova_object.namespace": "nova",
            "nova_object.version": "2.1" if payload_name == "InstanceUpdatePayload" else "1.9",
        },
        "priority": "ERROR" if fault is not None else "INFO",
        "publisher_id": f"{service}:{host}",
        "timestamp": moment.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }


def _context_fields(context: Context, moment: datetime.datetime) -> dict[str, Any]:
    project = context.project_id
    return {
        # Nova copies the caller's token here; the simulator's tokens are user:project.
        "_context_auth_token": f"{context.user_id}:{project or ''}",
        "_context_domain": None,
        "_context_global_request_id": context.global_request_id,
        "_context_is_admin": "admin" in context.roles,
        "_context_is_admin_project": True,
        "_context_project": project,
        "_context_project_domain": "default" if project else None,
        "_context_project_id": project,
        "_context_project_name": project,
        "_context_quota_class": None,
        "_context_read_deleted": "no",
        "_context_read_only": False,
        "_context_remote_address": None,
        "_context_request_id": context.request_id,
        "_context_resource_uuid": None,
        "_context_roles": list(context.roles),
        "_context_service_catalog": [],
        "_context_show_deleted": False,
        "_context_system_scope": None,
        "_context_timestamp": moment.isoformat(),
        "_context_user": context.user_id,
        "_context_user_domain": "default",
        "_context_user_id": context.user_id,
        "_context_user_identity": f"{context.user_id} {project or '-'} - default default",
        "_context_user_name": context.user_id,
    }


def fault_payload(exception: str, text: str, function: str) -> dict[str, Any]:
    """An ExceptionPayload 1.1, as Nova puts in an ``.error`` event's ``fault``."""
    return {
        "nova_object.data": {
            "exception": exception,
            "exception_message": text,
            "function_name": function,
            "module_name": "nova.compute.manager",
            "traceback": f"Traceback (most recent call last):\n  ...\n{exception}: {text}\n",
        },
        "nova_object.name": "ExceptionPayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.1",
    }


def payload(
    server: Server,
    payload_name: str,
    context: Context,
    old: tuple[Any, ...] | None,
    fault: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """InstanceActionPayload 1.9 / InstanceUpdatePayload 2.1 data for ``server``."""
    flavor = FLAVORS[server.flavor_id]
    data: dict[str, Any] = {
        "action_initiator_project": context.project_id,
        "action_initiator_user": context.user_id,
        "architecture": "x86_64",
        "auto_disk_config": "MANUAL",
        "availability_zone": "nova",
        "block_devices": None,
        "created_at": isotime(server.created),
        "deleted_at": None,
        "display_description": server.description,
        "display_name": server.name,
        "flavor": {
            "nova_object.data": {
                "description": None,
                "disabled": False,
                "ephemeral_gb": flavor.ephemeral,
                "extra_specs": {},
                "flavorid": flavor.id,
                "is_public": True,
                "memory_mb": flavor.ram,
                "name": flavor.name,
                "projects": None,
                "root_gb": flavor.disk,
                "rxtx_factor": 1.0,
                "swap": flavor.swap,
                "vcpu_weight": 0,
                "vcpus": flavor.vcpus,
            },
            "nova_object.name": "FlavorPayload",
            "nova_object.namespace": "nova",
            "nova_object.version": "1.4",
        },
        "host": server.host,
        "host_name": server.hostname,
        "image_uuid": server.image_ref,
        "ip_addresses": [],
        "kernel_id": "",
        "key_name": server.key_name,
        "launched_at": isotime(server.launched_at) if server.launched_at else None,
        "locked": server.locked,
        "locked_reason": server.locked_reason,
        "metadata": dict(server.metadata),
        "node": server.host,
        "os_type": None,
        "power_state": POWER_STATES.get(server.power_state, "pending"),
        "progress": 0,
        "ramdisk_id": "",
        "request_id": context.request_id,
        "reservation_id": server.reservation_id,
        "shares": None,
        "state": server.vm_state,
        "task_state": server.task_state,
        "tenant_id": server.project_id,
        "terminated_at": None,
        "updated_at": isotime(server.updated),
        "user_id": server.user_id,
        "uuid": server.id,
    }
    if payload_name == "InstanceActionPayload":
        data["fault"] = fault
        return data
    old_state, old_task = (old[0], old[1]) if old else (server.vm_state, server.task_state)
    data["audit_period"] = {
        "nova_object.data": {
            "audit_period_beginning": isotime(server.created),
            "audit_period_ending": isotime(now()),
        },
        "nova_object.name": "AuditPeriodPayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.0",
    }
    data["old_display_name"] = None
    data["state_update"] = {
        "nova_object.data": {
            "new_task_state": server.task_state,
            "old_state": old_state,
            "old_task_state": old_task,
            "state": server.vm_state,
        },
        "nova_object.name": "InstanceStateUpdatePayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.0",
    }
    data["tags"] = []
    return data
