"""The deployment files agree with the gateway and with each other: the Kubernetes base as
kubectl renders it, the image's and the systemd unit's configurations, and a policy
ConfigMap updated the way kubelet updates it is picked up without a restart.

(Schemas, hadolint and systemd-analyze run in scripts/check-deploy; these are the
properties no schema knows.)
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway import config
from gateway.identity.credentials import Credentials
from gateway.policy.engine import PolicyEngine
from gateway.ratelimit.rules import parse_rules
from tests.conftest import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
PAUSE = "os_compute_api:os-pause-server:pause"
MEMBER = Credentials("u-member", "p1", frozenset({"member", "reader"}))


# -- the Kubernetes base, rendered -----------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        skip_or_fail("kubectl is not installed (renders deploy/kubernetes)")
    output = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, check=True
    ).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    # A generated ConfigMap's name ends with kustomize's content hash.
    pattern = re.compile(re.escape(name) + r"(-[a-z0-9]{10})?")
    found = [o for o in objects if o["kind"] == kind and pattern.fullmatch(o["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


def gateway_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(objects, "Deployment", "nova-gateway")["spec"]["template"]["spec"]
    container: dict[str, Any]
    (container,) = pod["containers"]
    return container


def dockerfile() -> dict[str, list[str]]:
    """The final stage's instructions: ENV pairs, VOLUME paths, EXPOSE ports, ENTRYPOINT."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.rsplit("\nFROM ", 1)[1]
    found: dict[str, list[str]] = {"ENV": [], "VOLUME": [], "EXPOSE": [], "ENTRYPOINT": []}
    for line in final.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            found["ENV"].extend(re.findall(r"(\w+)=(\S+)", rest) and rest.split())
        elif word in ("VOLUME", "ENTRYPOINT"):
            found[word].extend(yaml.safe_load(rest))
        elif word == "EXPOSE":
            found["EXPOSE"].extend(rest.split())
    return found


def image_env() -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in dockerfile()["ENV"])


def load_conf(files: Mapping[str, str], tmp_path: Path, environ: Mapping[str, str]) -> Any:
    """The configuration a container would load: the image's file, then these files."""
    argv = ["--config-file", str(REPO / "deploy" / "image" / "nova-gateway.conf")]
    conf_dir = tmp_path / "nova-gateway.conf.d"
    conf_dir.mkdir()
    for name, text in files.items():
        (conf_dir / name).write_text(text)
    argv += ["--config-dir", str(conf_dir)]
    saved = {name: os.environ.get(name) for name in environ}
    os.environ.update(environ)
    try:
        return config.load(argv)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def environment(container: dict[str, Any], secrets: Mapping[str, str]) -> dict[str, str]:
    """The container's variables as kubelet expands them ($(NAME) of earlier ones)."""
    values: dict[str, str] = {}
    for entry in container["env"]:
        if "valueFrom" in entry:
            values[entry["name"]] = secrets[entry["valueFrom"]["secretKeyRef"]["key"]]
        else:
            values[entry["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: values[m.group(1)], entry["value"]
            )
    return values


def test_workers_match_the_cpu_limit_and_ports_the_listeners(
    rendered: list[dict[str, Any]],
) -> None:
    container = gateway_container(rendered)
    args = container["args"]
    workers = int(args[args.index("--workers") + 1])
    assert workers == int(container["resources"]["limits"]["cpu"])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    image_conf = configparser.ConfigParser()
    image_conf.read(REPO / "deploy" / "image" / "nova-gateway.conf")
    assert image_conf["gateway"]["listen"].endswith(f":{ports['api']}")
    assert image_conf["gateway"]["admin_listen"].endswith(f":{ports['admin']}")
    assert sorted(dockerfile()["EXPOSE"]) == sorted(map(str, ports.values()))


def test_probes_preStop_and_grace_period_drain_in_time(rendered: list[dict[str, Any]]) -> None:
    deployment = one(rendered, "Deployment", "nova-gateway")
    pod = deployment["spec"]["template"]["spec"]
    container = gateway_container(rendered)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    configmap = one(rendered, "ConfigMap", "nova-gateway-config")["data"]
    site = configparser.ConfigParser()
    site.read_string(configmap["nova-gateway.conf"])
    drain = float(site["gateway"]["graceful_shutdown_timeout"])
    assert int(pre_stop[1]) + drain < pod["terminationGracePeriodSeconds"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(
        next(p["containerPort"] for p in container["ports"] if p["name"] == "admin")
    )


def test_read_only_root_with_writable_audit_and_tmpdir_only(
    rendered: list[dict[str, Any]],
) -> None:
    pod = one(rendered, "Deployment", "nova-gateway")["spec"]["template"]["spec"]
    container = gateway_container(rendered)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        if not mount.get("readOnly"):
            assert "emptyDir" in volumes[mount["name"]]
    configmap = one(rendered, "ConfigMap", "nova-gateway-config")["data"]
    site = configparser.ConfigParser()
    site.read_string(configmap["nova-gateway.conf"])
    assert writable == {site["audit"]["file_directory"], image_env()["TMPDIR"]}
    # The image declares the same places as its volumes (audit under the state dir).
    assert {str(Path(path).parent) if "audit" in path else path for path in writable} == set(
        dockerfile()["VOLUME"]
    )


def test_the_pods_configuration_loads_with_rules_policies_and_secrets(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    container = gateway_container(rendered)
    pod = one(rendered, "Deployment", "nova-gateway")["spec"]["template"]["spec"]
    configmap = one(rendered, "ConfigMap", "nova-gateway-config")["data"]
    secret = one(rendered, "Secret", "nova-gateway-secrets")
    keys = set(secret["stringData"])
    from_env = (e["valueFrom"] for e in container["env"] if "valueFrom" in e)
    referenced = {value["secretKeyRef"]["key"] for value in from_env}
    volumes = {v["name"]: v for v in pod["volumes"]}
    referenced |= {item["key"] for item in volumes["secrets"]["secret"]["items"]}
    assert referenced <= keys, referenced - keys
    assert all(value == "" for value in secret["stringData"].values())  # never a real one

    filled = {"keystone-password": "pw", "redis-password": "0123abcd", "audit-hmac.key": "k"}
    environ = environment(container, filled)
    conf = load_conf({"nova-gateway.conf": configmap["nova-gateway.conf"]}, tmp_path, environ)
    assert conf.identity.mode == "keystone" and conf.identity.service_password == "pw"
    assert conf.audit.enabled
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert conf.audit.hmac_key_file == f"{mounts['secrets']}/audit-hmac.key"
    assert conf.rate_limit.rules_file == f"{mounts['config']}/rate-limits.yaml"
    assert conf.policy.policy_dir == mounts["policies"]
    assert parse_rules(yaml.safe_load(configmap["rate-limits.yaml"])).rules

    # The shared counters: Redis with Sentinel, one address per sentinel of the StatefulSet.
    url = urlsplit(conf.rate_limit.storage_url)
    assert url.scheme == "async+redis+sentinel" and url.password == "0123abcd"
    redis = one(rendered, "StatefulSet", "nova-gateway-redis")
    service = redis["spec"]["serviceName"]
    hosts = url.netloc.rpartition("@")[2].split(",")
    assert hosts == [
        f"{redis['metadata']['name']}-{index}.{service}:26379"
        for index in range(redis["spec"]["replicas"])
    ]
    script = one(rendered, "ConfigMap", "nova-gateway-redis-scripts")["data"]["configure.sh"]
    assert f"sentinel monitor {url.path.strip('/')} " in script


def test_policies_are_mounted_to_update_in_place(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment", "nova-gateway")["spec"]["template"]["spec"]
    container = gateway_container(rendered)
    policies = one(rendered, "ConfigMap", "nova-gateway-policies")
    # A stable name (no content hash) and a directory mount (no subPath): kubelet swaps
    # the files in place, which a subPath mount never sees.
    assert policies["metadata"]["name"] == "nova-gateway-policies"
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "policies"]
    assert "subPath" not in mount
    volume = next(v for v in pod["volumes"] if v["name"] == "policies")["configMap"]
    assert volume["name"] == "nova-gateway-policies"
    assert {item["key"] for item in volume["items"]} == set(policies["data"])


def test_selectors_and_the_autoscaler_agree_with_the_deployment(
    rendered: list[dict[str, Any]],
) -> None:
    deployment = one(rendered, "Deployment", "nova-gateway")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        target = one(rendered, kind, "nova-gateway")["spec"]
        selector = target.get("selector", {})
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), kind
    hpa = one(rendered, "HorizontalPodAutoscaler", "nova-gateway")["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["minReplicas"] == deployment["spec"]["replicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def with_tls_lines(text: str) -> str:
    """A configuration with its commented TLS examples (``# tls_... =``, ``# ..._ca_file
    =``) in force, as an operator turning TLS on would have it."""
    return re.sub(r"^# ((?:\w*tls_\w+|\w*ca_file) = .*)$", r"\1", text, flags=re.MULTILINE)


def test_the_tls_secret_is_optional_and_where_the_tls_examples_point(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    pod = one(rendered, "Deployment", "nova-gateway")["spec"]["template"]["spec"]
    container = gateway_container(rendered)
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]
    # Optional: the base applies without it; a renewal reaches a directory mount only.
    assert volume == {"secretName": "nova-gateway-tls", "optional": True, "defaultMode": 0o440}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert mount["readOnly"] is True and "subPath" not in mount
    configmap = one(rendered, "ConfigMap", "nova-gateway-config")["data"]["nova-gateway.conf"]
    environ = environment(container, {"keystone-password": "pw", "redis-password": "ab"})
    conf = load_conf({"nova-gateway.conf": with_tls_lines(configmap)}, tmp_path, environ)
    # The keys cert-manager (and kubectl create secret tls) write into such a Secret.
    names = {
        conf.gateway.tls_cert_file,
        conf.gateway.tls_key_file,
        conf.upstream.ca_file,
        conf.identity.keystone_ca_file,
        conf.rate_limit.storage_ca_file,
    }
    assert {str(Path(mount["mountPath"]) / key) for key in ("tls.crt", "tls.key", "ca.crt")} == (
        names
    )


# -- the image's and the systemd unit's configurations ---------------------------------


def test_the_image_runs_its_configuration_as_given(tmp_path: Path) -> None:
    entrypoint = dockerfile()["ENTRYPOINT"]
    assert entrypoint[0] == "/opt/nova-gateway/bin/nova-gateway"
    assert entrypoint[1:] == [
        "--config-file", "/etc/nova-gateway/nova-gateway.conf",
        "--config-dir", "/etc/nova-gateway/nova-gateway.conf.d",
    ]  # fmt: skip
    conf = load_conf({}, tmp_path, {})
    assert conf.gateway.workers == 1
    assert conf.policy.policy_dir == "/etc/nova-gateway/policies"
    assert Path(conf.audit.file_directory).parent == Path("/var/lib/nova-gateway")


def test_the_systemd_configuration_matches_its_unit(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "deploy" / "systemd" / "nova-gateway.service")
    service = unit["Service"]
    conf = config.load(["--config-file", str(REPO / "deploy" / "systemd" / "nova-gateway.conf")])
    credential, _, source = service["LoadCredential"].partition(":")
    assert conf.audit.hmac_key_file == f"/run/credentials/nova-gateway.service/{credential}"
    assert source.startswith("/etc/nova-gateway/")
    assert conf.audit.file_directory in service["ReadWritePaths"].split()
    assert conf.audit.file_directory == "/var/lib/" + service["StateDirectory"].split()[1]
    assert service["Environment"] == "TMPDIR=/run/" + service["RuntimeDirectory"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["RestartPreventExitStatus"] == "2"  # a refused configuration


def test_the_systemd_tls_drop_in_hands_over_the_key_the_configuration_names(
    tmp_path: Path,
) -> None:
    drop_in = configparser.ConfigParser(strict=False, interpolation=None)
    drop_in.optionxform = str  # type: ignore[assignment,method-assign]
    drop_in.read(REPO / "deploy" / "systemd" / "nova-gateway.service.d" / "tls.conf")
    credential, _, source = drop_in["Service"]["LoadCredential"].partition(":")
    text = with_tls_lines((REPO / "deploy" / "systemd" / "nova-gateway.conf").read_text())
    conf_file = tmp_path / "nova-gateway.conf"
    conf_file.write_text(text)
    conf = config.load(["--config-file", str(conf_file)])
    assert conf.gateway.tls_key_file == f"/run/credentials/nova-gateway.service/{credential}"
    tls_dir = Path(source).parent
    assert tls_dir == Path("/etc/nova-gateway/tls")
    assert Path(conf.gateway.tls_cert_file).parent == tls_dir
    assert Path(conf.upstream.ca_file).parent == tls_dir


# -- a policy ConfigMap, updated as kubelet updates it ---------------------------------


def kubelet_publish(directory: Path, files: Mapping[str, str], generation: int) -> None:
    """What kubelet's atomic writer does for a configMap volume: the files in a new
    timestamped directory, ``..data`` switched to it by one rename, and each top-level
    name a symlink through ``..data``."""
    payload = directory / f"..2026_01_01_00_00_{generation:02d}.{generation}"
    for relative, text in files.items():
        (payload / relative).parent.mkdir(parents=True, exist_ok=True)
        (payload / relative).write_text(text)
    staging = directory / "..data_tmp"
    staging.symlink_to(payload.name)
    os.replace(staging, directory / "..data")
    for top in {relative.split("/")[0] for relative in files}:
        link = directory / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    for old in directory.glob("..2026_*"):
        if old != payload:
            shutil.rmtree(old)


@pytest.fixture
def configmap_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "policies"
    directory.mkdir()
    yield directory


def test_a_policy_configmap_update_is_picked_up_without_restart(configmap_dir: Path) -> None:
    kubelet_publish(configmap_dir, {"policy.yaml": "{}\n", "policy.d/site-rules.yaml": "{}\n"}, 1)
    conf = config.make_conf()
    conf([], project="nova-gateway", default_config_files=[])
    conf.set_override("policy_dir", str(configmap_dir), group="policy")
    engine = PolicyEngine(conf)
    target = {"project_id": "p1", "user_id": "u-member"}
    assert engine.decide(PAUSE, target, MEMBER).allowed
    assert not engine.poll()
    # Same file names, same sizes even: only the ..data switch tells.
    kubelet_publish(
        configmap_dir,
        {"policy.yaml": "{}\n", "policy.d/site-rules.yaml": f'"{PAUSE}": "!"\n'},
        2,
    )
    assert engine.poll()
    assert not engine.decide(PAUSE, target, MEMBER).allowed
    kubelet_publish(configmap_dir, {"policy.yaml": "{}\n", "policy.d/site-rules.yaml": "{}\n"}, 3)
    assert engine.poll()
    assert engine.decide(PAUSE, target, MEMBER).allowed


# -- the Redis pods' configuration script ----------------------------------------------


def configure(pod: str, out: Path) -> str:
    """Run the init container's script for ``pod`` (no sentinel reachable: a first start)."""
    out.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "CONFIG_DIR": str(out),
        "POD_NAME": pod,
        "POD_NAMESPACE": "nova-gateway",
        "SERVICE": "nova-gateway-redis",
        "REDIS_PASSWORD": "0123abcd",
    }
    run = subprocess.run(
        ["sh", str(KUBERNETES / "redis" / "configure.sh")],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return run.stdout


def test_redis_pods_start_as_primary_and_replicas_with_configs_redis_accepts(
    tmp_path: Path,
) -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        skip_or_fail("redis-server and redis-cli are needed")
    first = configure("nova-gateway-redis-0", tmp_path / "pod-0")
    second = configure("nova-gateway-redis-1", tmp_path / "pod-1")
    primary = "nova-gateway-redis-0.nova-gateway-redis.nova-gateway.svc"
    assert f"the primary is {primary}" in first and f"the primary is {primary}" in second
    assert "replicaof" not in (tmp_path / "pod-0" / "redis.conf").read_text()
    assert f"replicaof {primary} 6379" in (tmp_path / "pod-1" / "redis.conf").read_text()
    sentinel_conf = (tmp_path / "pod-1" / "sentinel.conf").read_text()
    assert f"sentinel monitor nova-gateway {primary} 6379 2" in sentinel_conf
    # Redis itself reads the file (on a unix socket here: port 6379 is not ours).
    import redis

    socket_path = tmp_path / "redis.sock"
    # /data is the pod's volume; here, a directory of this test's.
    conf = tmp_path / "redis.conf"
    conf.write_text(
        (tmp_path / "pod-0" / "redis.conf").read_text().replace("dir /data", f"dir {tmp_path}")
    )
    argv = ["redis-server", str(conf), "--port", "0", "--unixsocket", str(socket_path)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), password="0123abcd")
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.info("replication")["role"] == "master"
        assert client.config_get("save") == {"save": ""}
        client.close()
    finally:
        server.terminate()
        server.wait(10)
