"""What each server action does once Nova's gates let it through: state changes, task
states, the answer's body and headers, and the few checks Nova makes inside the
controller or compute API after the catalogue's gates.

Owns one effect row per action key (action_table.py owns the gates' data); it must never
re-check policy, lock or state rules the gate already applied.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from novasim import policy, views
from novasim.faults import Fault, unexpected
from novasim.identity import Caller
from novasim.lifecycle import Transition
from novasim.microversion import Version
from novasim.model import COMPUTE_HOSTS, FLAVORS, KNOWN_IMAGES, LAB_IMAGE, Address, Server, now
from novasim.sim import Sim
from novasim.store import generate_password
from novasim.wire import JSON, WEBOB_DEFAULT_TYPE

_V = Version
FAKE_CONSOLE_OUTPUT = "FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE"  # nova.virt.fake
_CONTROL_CHARACTERS = {c: None for c in [*range(0x00, 0x09), *range(0x0B, 0x20)]}
UNSHELVE_TO_HOST = "os_compute_api:os-shelve:unshelve_to_host"


def unexpected_error(exception_class: str) -> Fault:
    """The 500 Nova answers when a controller lets a Nova exception escape."""
    return unexpected(f"nova.exception.{exception_class}")


class HostCheck(enum.Enum):
    """Where Nova's check_instance_host (409 'Instance <id> is not ready') sits."""

    NONE = "no host check"
    BEFORE_STATE = "after the lock check, before the state check"
    AFTER_STATE = "after the state check"


@dataclass(frozen=True)
class ActionCall:
    """One action that passed lookup and policy."""

    key: str  # the action key
    server_id: str  # as written in the URL
    value: Any  # the action key's value
    version: Version
    caller: Caller
    server: Server | None  # None only for removeFloatingIp of an unassociated address
    request_id: str
    view: views.ViewContext

    @property
    def target(self) -> Server:
        assert self.server is not None, "only removeFloatingIp runs without a server"
        return self.server

    def at_least(self, minimum: Version) -> bool:
        return self.version >= minimum


@dataclass
class Outcome:
    """The answer of a successful action."""

    status: int
    body: Any = None  # JSON payload; None means an empty body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON
    record: bool = True  # False when Nova records no instance action (lock no-op)


Effect = Callable[[ActionCall, Sim], Outcome]
Precheck = Callable[[ActionCall, Sim], None]


@dataclass(frozen=True)
class EffectRow:
    apply: Effect
    instance_action: str | None = None  # nova/compute/instance_actions.py name
    host_check: HostCheck = HostCheck.NONE
    # Controller-level checks Nova makes before the compute API's lock/state checks.
    precheck: Precheck | None = None
    # The controller does not catch InstanceInvalidState: a state refusal is a 500.
    state_fault_uncaught: bool = False


def _accepted(call: ActionCall, sim: Sim) -> Outcome:
    return Outcome(202)


def _task(task_state: str | None, end_vm_state: str | None, **more: Any) -> Effect:
    """An effect that only runs a task: ``task_state`` now, ``end_vm_state`` when settled."""

    def apply(call: ActionCall, sim: Sim) -> Outcome:
        sim.lifecycle.begin(call.target, Transition(task_state, end_vm_state, **more))
        return Outcome(202)

    return apply


def _other_host(current: str | None) -> str:
    return next((h for h in COMPUTE_HOSTS if h != current), COMPUTE_HOSTS[0])


# --- resize family ---------------------------------------------------------------------


def _start_migration(sim: Sim, server: Server, flavor_id: str, host: str | None) -> None:
    target_host = host or _other_host(server.host)

    def finish(s: Server) -> None:
        s.host = target_host
        s.migration_pending = True

    server.previous_vm_state = server.vm_state
    server.previous_host = server.host
    server.old_flavor_id = server.flavor_id
    server.flavor_id = flavor_id
    sim.lifecycle.begin(server, Transition("resize_prep", "resized", finish=finish))


def _resize(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    flavor_id = str(call.value["flavorRef"])
    if flavor_id not in FLAVORS:
        raise Fault(400, f"Flavor {flavor_id} could not be found.")
    if flavor_id == server.flavor_id:
        raise Fault(400, "When resizing, instances must change flavor!")
    _start_migration(sim, server, flavor_id, None)
    return Outcome(202)


def _migrate(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    host = None
    if call.at_least(_V(2, 56)) and isinstance(call.value, dict):
        host = call.value.get("host")
    if host:
        if host not in COMPUTE_HOSTS:
            raise Fault(400, f"Compute host {host} could not be found.")
        if host == server.host:
            raise Fault(400, "Cannot migrate to the host where the server exists.")
    _start_migration(sim, server, server.flavor_id, host or None)
    return Outcome(202)


def _require_migration(server: Server) -> None:
    if not server.migration_pending:
        raise Fault(400, "Instance has not been resized.")


def _end_migration(s: Server) -> None:
    s.migration_pending = False
    s.old_flavor_id = None
    s.previous_vm_state = None
    s.previous_host = None


def _confirm_resize(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    _require_migration(server)
    # Nova answers while the server still reads VERIFY_RESIZE with no task state.
    end = server.previous_vm_state or "active"
    sim.lifecycle.begin(server, Transition(None, end, finish=_end_migration))
    return Outcome(204)


def _revert_resize(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    _require_migration(server)
    end = server.previous_vm_state or "active"
    old_flavor, old_host = server.old_flavor_id or server.flavor_id, server.previous_host

    def finish(s: Server) -> None:
        s.flavor_id = old_flavor
        s.host = old_host
        _end_migration(s)

    sim.lifecycle.begin(server, Transition("resize_reverting", end, finish=finish))
    return Outcome(202)


# --- lifecycle actions -----------------------------------------------------------------


def _reboot(call: ActionCall, sim: Sim) -> Outcome:
    hard = str(call.value["type"]).upper() == "HARD"
    task = "rebooting_hard" if hard else "rebooting"
    sim.lifecycle.begin(call.target, Transition(task, "active"))
    return Outcome(202)


PRESERVE_EPHEMERAL = "The current driver does not support preserving ephemeral partitions."


def _known_image(sim: Sim, image: str) -> bool:
    return image in KNOWN_IMAGES or image in sim.store.images


def _rebuild(call: ActionCall, sim: Sim) -> Outcome:
    server, value = call.target, call.value
    image = str(value["imageRef"])
    if not _known_image(sim, image):
        raise Fault(400, "Cannot find image for rebuild")
    # A volume-backed server's root volume holds the lab image; another one needs 2.93.
    if server.volume_backed and image != LAB_IMAGE and not call.at_least(_V(2, 93)):
        raise Fault(
            400,
            f"Image {image} is unacceptable: Unable to rebuild with a different image "
            "for a volume-backed server.",
        )
    password = value.get("adminPass") or generate_password()
    _apply_rebuild_fields(call, server, image, password)
    end = "stopped" if server.vm_state == "stopped" else "active"
    options = views.update_options(call.view, keypair_from=_V(2, 54))
    seen: dict[str, Any] = {}

    def observe(s: Server) -> None:
        seen.update(views.server_view(call.view, s, options))

    def finish(s: Server) -> None:
        s.launched_at = now()

    transition = Transition("rebuilding", end, finish=finish)
    if _truthy(value.get("preserve_ephemeral", False)):
        # Nova's in-tree drivers but libvirt and ironic cannot: the compute fails the
        # rebuild (instance.rebuild.error) and puts the server in ERROR, after the 202.
        sim.notifier.failing(
            server, "PreserveEphemeralNotSupported", PRESERVE_EPHEMERAL, "_rebuild_default_impl"
        )
        transition = Transition("rebuilding", "error")
    sim.lifecycle.begin(server, transition, observe=observe)
    seen["adminPass"] = password
    if call.at_least(_V(2, 57)):
        seen["user_data"] = server.user_data
    location = call.view.self_link("servers", server.id)
    return Outcome(202, {"server": seen}, headers={"Location": location})


def _apply_rebuild_fields(call: ActionCall, server: Server, image: str, password: str) -> None:
    value = call.value
    if not server.volume_backed:
        server.image_ref = image
    server.admin_pass = password
    if "name" in value:
        server.name = value["name"]
    if "metadata" in value:
        server.metadata = dict(value["metadata"])
    if "accessIPv4" in value:
        server.access_ipv4 = value["accessIPv4"] or ""
    if "accessIPv6" in value:
        server.access_ipv6 = value["accessIPv6"] or ""
    if call.at_least(_V(2, 19)) and "description" in value:
        server.description = value["description"]
    if call.at_least(_V(2, 54)) and "key_name" in value:
        server.key_name = value["key_name"]
    if call.at_least(_V(2, 57)) and "user_data" in value:
        server.user_data = value["user_data"]
    if call.at_least(_V(2, 90)) and "hostname" in value:
        server.hostname = value["hostname"]


def _create_image(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    image_id = sim.store.add_image(str(call.value["name"]))
    if not server.volume_backed:
        # A volume-backed snapshot is a Cinder snapshot: no task state on the server.
        sim.lifecycle.begin(server, Transition("image_snapshot", None))
    if call.at_least(_V(2, 45)):
        return Outcome(202, {"image_id": image_id})
    location = f"{sim.config.image_service_url}/images/{image_id}"
    return Outcome(202, headers={"Location": location}, content_type=WEBOB_DEFAULT_TYPE)


def _create_backup(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    if server.volume_backed:
        raise Fault(400, "Backup is not supported for volume-backed instances.")
    rotation = int(call.value["rotation"])
    image_id = sim.store.add_image(str(call.value["name"]))
    sim.lifecycle.begin(server, Transition("image_backup", None))
    if call.at_least(_V(2, 45)):
        return Outcome(202, {"image_id": image_id})
    headers = {}
    if rotation > 0:
        headers["Location"] = f"{call.view.host_url}/v2.1/images/{image_id}"
    return Outcome(202, headers=headers, content_type=WEBOB_DEFAULT_TYPE)


def _reset_state(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    server.generation += 1  # a task still in flight must not settle over the reset
    server.vm_state = call.value["state"]
    server.task_state = None
    server.touch()
    return Outcome(202)


def _change_password(call: ActionCall, sim: Sim) -> Outcome:
    call.target.admin_pass = call.value["adminPass"]
    sim.lifecycle.begin(call.target, Transition("updating_password", None))
    return Outcome(202)


def _console_output(call: ActionCall, sim: Sim) -> Outcome:
    output = FAKE_CONSOLE_OUTPUT
    length = call.value.get("length")
    if length is not None:
        # nova.compute.manager._tail_log, including its quirk that -1 drops a line.
        try:
            count = int(length)
        except ValueError:
            count = 0
        output = "" if count == 0 else "\n".join(output.split("\n")[-count:])
    return Outcome(200, {"output": output.translate(_CONTROL_CHARACTERS)})


# --- evacuate and live migration -------------------------------------------------------


def _evacuate_precheck(call: ActionCall, sim: Sim) -> None:
    value, server = call.value, call.target
    host = value.get("host")
    if call.at_least(_V(2, 29)) and _truthy(value.get("force", False)) and not host:
        raise Fault(400, "Can't force to a non-provided destination")
    if (
        not call.at_least(_V(2, 14))
        and "adminPass" in value
        and _truthy(value.get("onSharedStorage"))
    ):
        raise Fault(400, "admin password can't be changed on existing disk")
    if host is not None and host not in COMPUTE_HOSTS:
        raise Fault(404, f"Compute host {host} not found.")
    if server.host == host:
        raise Fault(400, "The target host can't be the same one.")


def _truthy(value: Any) -> bool:
    """oslo strutils.bool_from_string (non-strict)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "t", "true", "on", "y", "yes")


def _evacuate(call: ActionCall, sim: Sim) -> Outcome:
    server, value = call.target, call.value
    host = value.get("host") or _other_host(server.host)
    end = "stopped" if call.at_least(_V(2, 95)) else "active"

    def finish(s: Server) -> None:
        s.host = host

    sim.lifecycle.begin(server, Transition("rebuilding", end, finish=finish))
    if call.at_least(_V(2, 14)):
        return Outcome(200)
    if "adminPass" in value:
        password: str | None = value["adminPass"]
    else:
        password = None if _truthy(value.get("onSharedStorage")) else generate_password()
    return Outcome(200, {"adminPass": password})


def _live_migrate_precheck(call: ActionCall, sim: Sim) -> None:
    forced = _V(2, 30) <= call.version < _V(2, 68) and _truthy(call.value.get("force", False))
    if forced and not call.value.get("host"):
        raise Fault(400, "Can't force to a non-provided destination")


def _live_migrate(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    host = call.value.get("host")
    if host:
        if host not in COMPUTE_HOSTS:
            raise Fault(400, f"Compute host {host} could not be found.")
        if host == server.host:
            if not call.at_least(_V(2, 34)):
                raise Fault(
                    400,
                    f"Unable to migrate instance ({server.id}) to current host ({host}).",
                )
            return Outcome(202)  # from 2.34 the conductor fails it asynchronously
    target = host or _other_host(server.host)

    def finish(s: Server) -> None:
        s.host = target

    sim.lifecycle.begin(server, Transition("migrating", None, finish=finish))
    return Outcome(202)


# --- networking ------------------------------------------------------------------------


def _add_floating_ip(call: ActionCall, sim: Sim) -> Outcome:
    server, value = call.target, call.value
    address = value["address"]
    if not server.addresses:
        raise Fault(400, "Instance network is not ready yet")
    fixed = [a for a in server.addresses if a.kind == "fixed"]
    if not fixed:
        raise Fault(400, "No fixed IPs associated to instance")
    if "fixed_address" in value:
        chosen = next((a for a in fixed if a.addr == value["fixed_address"]), None)
        if chosen is None:
            raise Fault(400, "Specified fixed address not assigned to instance")
    else:
        chosen = next((a for a in fixed if a.version == 4), None)
        if chosen is None:
            raise Fault(
                400,
                f"Unable to associate floating IP {address} to any fixed IPs for instance "
                f"{call.server_id}. Instance has no fixed IPv4 addresses to associate.",
            )
    if address in sim.store.floating_ips:
        raise Fault(400, "floating IP is already associated")
    version = 6 if ":" in address else 4
    server.addresses.append(Address(chosen.network, address, version, "floating", chosen.mac))
    sim.store.floating_ips[address] = server.id
    return Outcome(202, content_type=WEBOB_DEFAULT_TYPE)


def _remove_floating_ip(call: ActionCall, sim: Sim) -> Outcome:
    address = call.value["address"]
    server = call.server
    if server is None or server.id != call.server_id:
        raise Fault(409, f"Floating IP {address} is not associated with instance {call.server_id}.")
    server.addresses = [a for a in server.addresses if a.addr != address]
    sim.store.floating_ips.pop(address, None)
    return Outcome(202, content_type=WEBOB_DEFAULT_TYPE)


def _add_fixed_ip(call: ActionCall, sim: Sim) -> Outcome:
    call.target.addresses.append(sim.store.fixed_address())
    return Outcome(202)


def _remove_fixed_ip(call: ActionCall, sim: Sim) -> Outcome:
    server, address = call.target, call.value["address"]
    if not any(a.addr == address and a.kind == "fixed" for a in server.addresses):
        raise Fault(400, f"Instance {server.id} does not have fixed IP '{address}'.")
    server.addresses = [a for a in server.addresses if a.addr != address]
    return Outcome(202)


def _security_group_name(call: ActionCall) -> str:
    name = str(call.value["name"])
    if not name.strip():
        raise Fault(400, "Security group name cannot be empty")
    return name


def _no_ports(server: Server) -> Fault:
    return Fault(404, f"instance_id {server.id} could not be found as device id on any ports")


def _add_security_group(call: ActionCall, sim: Sim) -> Outcome:
    server, name = call.target, _security_group_name(call)
    if not server.addresses:
        raise _no_ports(server)
    if name not in server.security_groups:
        server.security_groups.append(name)
    return Outcome(202)


def _remove_security_group(call: ActionCall, sim: Sim) -> Outcome:
    server, name = call.target, _security_group_name(call)
    if not server.addresses:
        raise _no_ports(server)
    if name not in server.security_groups:
        raise Fault(404, f"Security group {name} not associated with the instance {server.id}")
    server.security_groups.remove(name)
    return Outcome(202)


# --- lock ------------------------------------------------------------------------------


def _lock(call: ActionCall, sim: Sim) -> Outcome:
    server, caller = call.target, call.caller
    is_owner = caller.project_id == server.project_id
    if server.locked and is_owner:
        return Outcome(202, record=False)  # silent no-op: the reason is not updated
    server.locked_by = "owner" if is_owner else "admin"
    if call.at_least(_V(2, 73)) and isinstance(call.value, dict):
        reason = call.value.get("locked_reason")
        if reason:
            server.locked_reason = reason
    server.touch()
    return Outcome(202)


def _unlock(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    server.locked_by = None
    server.locked_reason = None
    server.touch()
    return Outcome(202)


# --- consoles --------------------------------------------------------------------------


def _console(url: Callable[[str], str]) -> Effect:
    def apply(call: ActionCall, sim: Sim) -> Outcome:
        console_type = call.value.get("type")
        if console_type == "xvpvnc":
            # The compute manager raises ConsoleTypeInvalid, which no controller catches.
            raise unexpected_error("ConsoleTypeInvalid")
        return Outcome(200, {"console": {"type": console_type, "url": url(str(uuid.uuid4()))}})

    return apply


# --- rescue and shelve -----------------------------------------------------------------


def _rescue(call: ActionCall, sim: Sim) -> Outcome:
    server = call.target
    value = call.value if isinstance(call.value, dict) else {}
    rescue_image = value.get("rescue_image_ref")
    if rescue_image and not _known_image(sim, rescue_image):
        raise Fault(400, f"Requested rescue image '{rescue_image}' is not supported")
    if server.volume_backed:
        # From 2.87 only a rescue image with hw_rescue_* properties can do it; none has.
        raise Fault(
            400,
            f"Instance {server.id} cannot be rescued: Cannot rescue a volume-backed instance",
        )
    password = value.get("adminPass") or generate_password()
    sim.lifecycle.begin(server, Transition("rescuing", "rescued"))
    return Outcome(200, {"adminPass": password})


def _shelve(call: ActionCall, sim: Sim) -> Outcome:
    offload = sim.config.offload_on_shelve

    def finish(s: Server) -> None:
        if offload:
            s.host = None

    end = "shelved_offloaded" if offload else "shelved"
    sim.lifecycle.begin(call.target, Transition("shelving", end, finish=finish))
    return Outcome(202)


def _clear_host(s: Server) -> None:
    s.host = None


def _unshelve(call: ActionCall, sim: Sim) -> Outcome:
    server, value = call.target, call.value
    az_passed, new_az, host = False, None, None
    if isinstance(value, dict) and value:
        if call.at_least(_V(2, 77)) and "availability_zone" in value:
            az_passed, new_az = True, value["availability_zone"]
        if call.at_least(_V(2, 91)):
            host = value.get("host")
    if (az_passed or host) and server.vm_state != "shelved_offloaded":
        raise Fault(
            409,
            f'Specifying an availability zone or a host when unshelving server "{server.id}" '
            f'with status "{server.vm_state}" is not supported. The server status must be '
            "SHELVED_OFFLOADED.",
        )
    if az_passed and new_az and new_az != "nova":
        raise Fault(400, "The requested availability zone is not available")
    if host:
        # Nova checks this rule inside the compute API, after lock and state.
        policy.enforce(UNSHELVE_TO_HOST, policy.ADMIN_CHECK, call.caller, server.project_id)
        if host not in COMPUTE_HOSTS:
            raise Fault(400, f"Compute host {host} could not be found.")
    target = host or server.host or _other_host(None)

    def finish(s: Server) -> None:
        s.host = target

    sim.lifecycle.begin(server, Transition("unshelving", "active", finish=finish))
    return Outcome(202)


EFFECTS: Mapping[str, EffectRow] = {
    "confirmResize": EffectRow(_confirm_resize, "confirmResize"),
    "revertResize": EffectRow(_revert_resize, "revertResize"),
    "reboot": EffectRow(_reboot, "reboot"),
    "resize": EffectRow(_resize, "resize", HostCheck.AFTER_STATE),
    "rebuild": EffectRow(_rebuild, "rebuild"),
    "createImage": EffectRow(_create_image, "createImage"),
    "os-start": EffectRow(_task("powering-on", "active"), "start", HostCheck.BEFORE_STATE),
    "os-stop": EffectRow(_task("powering-off", "stopped"), "stop", HostCheck.BEFORE_STATE),
    "trigger_crash_dump": EffectRow(_accepted, "trigger_crash_dump", HostCheck.BEFORE_STATE),
    "injectNetworkInfo": EffectRow(_accepted),
    "os-resetState": EffectRow(_reset_state, "resetState"),
    "changePassword": EffectRow(_change_password, "changePassword"),
    "os-getConsoleOutput": EffectRow(_console_output, None, HostCheck.BEFORE_STATE),
    "createBackup": EffectRow(_create_backup, "createBackup"),
    "restore": EffectRow(_task("restoring", "active"), "restore"),
    "forceDelete": EffectRow(_task("deleting", None, delete=True), "delete"),
    "evacuate": EffectRow(_evacuate, "evacuate", precheck=_evacuate_precheck),
    "addFloatingIp": EffectRow(_add_floating_ip),
    "removeFloatingIp": EffectRow(_remove_floating_ip),
    "lock": EffectRow(_lock, "lock"),
    "unlock": EffectRow(_unlock, "unlock"),
    "migrate": EffectRow(_migrate, "migrate", HostCheck.AFTER_STATE),
    "os-migrateLive": EffectRow(_live_migrate, "live-migration", precheck=_live_migrate_precheck),
    "addFixedIp": EffectRow(_add_fixed_ip),
    "removeFixedIp": EffectRow(_remove_fixed_ip),
    "pause": EffectRow(_task("pausing", "paused"), "pause"),
    "unpause": EffectRow(_task("unpausing", "active"), "unpause"),
    "os-getVNCConsole": EffectRow(
        _console(lambda t: f"http://127.0.0.1:6080/vnc_auto.html?path=%3Ftoken%3D{t}"),
        host_check=HostCheck.BEFORE_STATE,
    ),
    "os-getSPICEConsole": EffectRow(
        _console(lambda t: f"http://127.0.0.1:6082/spice_auto.html?token={t}"),
        host_check=HostCheck.BEFORE_STATE,
        state_fault_uncaught=True,
    ),
    "os-getSerialConsole": EffectRow(
        _console(lambda t: f"ws://127.0.0.1:6083/?token={t}"),
        host_check=HostCheck.BEFORE_STATE,
        state_fault_uncaught=True,
    ),
    "rescue": EffectRow(_rescue, "rescue"),
    "unrescue": EffectRow(_task("unrescuing", "active"), "unrescue"),
    "addSecurityGroup": EffectRow(_add_security_group),
    "removeSecurityGroup": EffectRow(_remove_security_group),
    "shelve": EffectRow(_shelve, "shelve"),
    "shelveOffload": EffectRow(
        _task("shelving_offloading", "shelved_offloaded", finish=_clear_host), "shelveOffload"
    ),
    "unshelve": EffectRow(_unshelve, "unshelve"),
    "suspend": EffectRow(_task("suspending", "suspended"), "suspend"),
    "resume": EffectRow(_task("resuming", "active"), "resume"),
}
