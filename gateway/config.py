"""Every configuration option of the gateway, declared once with oslo.config.

Owns option names, defaults, help texts and start-up validation; it must never act on
a value (the concerns read their options from the ConfigOpts they are handed).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from oslo_config import cfg, types

from gateway.nova.types import Version

# Mozilla's "intermediate" TLS 1.2 suites with ECDHE: forward secrecy and AEAD only.
# Its DHE suites are left out: Python gives a server context no DH parameters, so they
# could never be chosen. TLS 1.3's suites are OpenSSL's three, which are Mozilla's.
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

DEFAULT_BODY_LIMIT = 114688  # oslo_middleware max_request_body_size, Nova's default


class HostPort(types.String):
    """``host:port`` (IPv6 in brackets); validated at start-up."""

    def __call__(self, value: Any) -> str:
        text = str(super().__call__(value))
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return text


gateway_opts: list[cfg.Opt] = [
    cfg.Opt(
        "listen",
        type=HostPort(),
        default="127.0.0.1:8774",
        help="HOST:PORT the proxied compute API listens on.",
    ),
    cfg.Opt(
        "admin_listen",
        type=HostPort(),
        default="127.0.0.1:9774",
        help="HOST:PORT of the admin listener (/healthz, /readyz, /metrics). Keep it off "
        "the client network.",
    ),
    cfg.IntOpt(
        "workers",
        min=0,
        default=0,
        help="Worker processes sharing the listen port (SO_REUSEPORT). 0 means one per CPU.",
    ),
    cfg.FloatOpt(
        "graceful_shutdown_timeout",
        min=0,
        default=30.0,
        help="On SIGTERM, seconds to let in-flight requests finish before closing.",
    ),
    cfg.BoolOpt(
        "access_log",
        default=False,
        help="Log one JSON line per answered request of the API listener on stderr "
        "(event 'request': request_id, upstream_request_id when Nova answered, method, "
        "path without the query string, status, seconds, bytes, peer, user_id, "
        "project_id, action, decision, and the refusing gate as reason). Written by a "
        "thread, never by the event loop; lines are dropped and counted if stderr is read "
        "too slowly. Off: no per-request lines (the audit trail records every call). The "
        "admin listener never logs requests.",
    ),
    cfg.ListOpt(
        "trusted_proxies",
        default=[],
        mutable=True,
        help="Addresses or CIDRs of front proxies whose X-Forwarded-For/-Proto/-Host "
        "are believed. From any other peer these headers are replaced.",
    ),
    cfg.StrOpt(
        "server_header",
        default="nova-api",
        # Printable ASCII, no leading or trailing space: nothing can end the header line.
        regex=r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$",
        mutable=True,
        help="The Server header of every answer, the upstream's and the gateway's own "
        "(aiohttp's parser errors included). The default names no software version; set "
        "what your nova-api's web server says (e.g. Apache) to make the gateway's answers "
        "indistinguishable from Nova's.",
    ),
    cfg.StrOpt(
        "tls_cert_file",
        help="PEM certificate chain (the gateway's certificate first, then intermediates) "
        "of the API listener. Set with tls_key_file, the listener speaks HTTPS only, and "
        "X-Forwarded-Proto is https for its callers. Unset: plain HTTP (TLS terminated in "
        "front of the gateway). Re-read on SIGHUP and when the file changes.",
    ),
    cfg.StrOpt("tls_key_file", help="Unencrypted PEM private key of tls_cert_file."),
    cfg.StrOpt(
        "admin_tls_cert_file",
        help="PEM certificate chain of the admin listener (/healthz, /readyz, /metrics); "
        "set with admin_tls_key_file, it speaks HTTPS only. Re-read like tls_cert_file.",
    ),
    cfg.StrOpt("admin_tls_key_file", help="Unencrypted PEM private key of admin_tls_cert_file."),
    cfg.StrOpt(
        "admin_tls_client_ca_file",
        help="PEM CA certificates; set, the admin listener requires a client certificate "
        "issued by one of them (mutual TLS) and refuses the handshake otherwise. Needs "
        "admin_tls_cert_file. Re-read with the certificate.",
    ),
    cfg.StrOpt(
        "tls_minimum_version",
        default="1.2",
        choices=[("1.2", "TLS 1.2 and 1.3 (Mozilla intermediate)"), ("1.3", "TLS 1.3 only")],
        help="Oldest TLS version the listeners accept; the newest both sides know is used.",
    ),
    cfg.StrOpt(
        "tls_ciphers",
        default=INTERMEDIATE_CIPHERS,
        help="OpenSSL cipher list for TLS 1.2 on the listeners (TLS 1.3 always offers its "
        "three AEAD suites). The default is Mozilla's intermediate list, ECDHE suites only.",
    ),
    cfg.FloatOpt(
        "tls_reload_interval",
        min=0,
        default=60.0,
        help="Seconds between checks of the listeners' certificate, key and client-CA "
        "files; a change is loaded for new connections (open ones keep theirs). 0: only "
        "on SIGHUP.",
    ),
]

upstream_opts: list[cfg.Opt] = [
    cfg.URIOpt(
        "url",
        schemes=["http", "https"],
        help="Base URL of nova-api's compute endpoint, e.g. http://nova:8774/v2.1. "
        "Unset: the demo starts the bundled Nova simulator.",
    ),
    cfg.FloatOpt("connect_timeout", min=0.001, default=5.0, help="Seconds to connect."),
    cfg.FloatOpt(
        "read_timeout",
        min=0.001,
        default=60.0,
        help="Seconds to wait for the next chunk of the upstream's answer (headers or "
        "body) before answering 504.",
    ),
    cfg.FloatOpt(
        "total_timeout",
        min=0.001,
        default=300.0,
        help="Seconds an upstream exchange may take in all, body streaming included.",
    ),
    cfg.IntOpt(
        "pool_size",
        min=1,
        default=256,
        help="Connections to the upstream per worker process.",
    ),
    cfg.FloatOpt(
        "pool_wait",
        min=0,
        default=5.0,
        help="Seconds a request waits for a free upstream connection before 503.",
    ),
    cfg.IntOpt(
        "pool_retry_after",
        min=0,
        default=1,
        help="Retry-After seconds sent with the 503 of an exhausted pool.",
    ),
    cfg.FloatOpt(
        "version_refresh_interval",
        min=1,
        default=60.0,
        help="Seconds between reads of the upstream's version document (supported "
        "microversion range, readiness).",
    ),
    cfg.FloatOpt(
        "ready_max_age",
        min=1,
        default=180.0,
        help="/readyz fails when the upstream last answered its version document "
        "longer ago than this.",
    ),
    cfg.StrOpt(
        "min_version",
        help="Override the minimum microversion read from the upstream, e.g. 2.1.",
    ),
    cfg.StrOpt(
        "max_version",
        help="Override the maximum microversion read from the upstream, e.g. 2.104.",
    ),
    cfg.StrOpt(
        "ca_file",
        help="PEM CA certificates that verify nova-api's certificate (https url): the "
        "deployment's own CA, used instead of the system's trust store. Unset: the "
        "system's. The certificate and its hostname are always verified.",
    ),
    cfg.StrOpt(
        "cert_file",
        help="PEM client certificate the gateway presents to nova-api (mutual TLS), with key_file.",
    ),
    cfg.StrOpt("key_file", help="Unencrypted PEM private key of cert_file."),
]

limit_opts: list[cfg.Opt] = [
    cfg.IntOpt(
        "max_request_body_size",
        min=0,
        mutable=True,
        default=DEFAULT_BODY_LIMIT,
        help="Largest request body in bytes; larger is 413 (Nova's default 114688).",
    ),
    cfg.IntOpt("max_headers", min=1, default=128, help="Most request header lines."),
    cfg.IntOpt(
        "max_header_size",
        min=256,
        default=8190,
        help="Longest request line or header field, in bytes (larger is 400/431).",
    ),
    cfg.IntOpt(
        "max_path_length",
        min=64,
        mutable=True,
        default=2048,
        help="Longest request path in characters; longer is 414.",
    ),
    cfg.FloatOpt(
        "request_body_timeout",
        min=0.001,
        mutable=True,
        default=60.0,
        help="Seconds the whole request body may take to arrive once the headers are in; "
        "slower is 408, so a client trickling its body (slow loris) cannot hold a request "
        "open for ever.",
    ),
    cfg.FloatOpt(
        "idle_timeout",
        min=1,
        default=75.0,
        help="Seconds a client connection may stay open between requests (or before its "
        "first request's headers are complete) before the gateway closes it.",
    ),
]

identity_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "mode",
        choices=[
            ("keystone", "validate X-Auth-Token with Keystone's v3 API (production)"),
            ("jwt", "verify signed JSON Web Tokens with configured keys"),
            ("noauth", "demo tokens <user>:<project>[:<roles>]; never in production"),
        ],
        default="keystone",
        help="How callers are authenticated.",
    ),
    cfg.BoolOpt(
        "allow_noauth",
        default=False,
        help="Must be true for mode=noauth to start: noauth trusts whatever a caller claims to be.",
    ),
    cfg.StrOpt(
        "noauth_service_token",
        default="nova-gateway:service:admin",
        secret=True,
        help="In noauth mode, the token the gateway itself uses to read servers.",
    ),
    cfg.URIOpt(
        "keystone_url",
        schemes=["http", "https"],
        help="Keystone's v3 endpoint, e.g. http://keystone:5000/v3 (mode=keystone).",
    ),
    cfg.URIOpt(
        "www_authenticate_uri",
        schemes=["http", "https"],
        help="The identity endpoint a 401 names in WWW-Authenticate: Keystone "
        'uri="..." (mode=keystone), as keystonemiddleware\'s option of the same name. '
        "Unset: keystone_url, as written (path included).",
    ),
    cfg.StrOpt(
        "keystone_ca_file",
        help="PEM CA certificates that verify Keystone's certificate (https keystone_url), "
        "instead of the system's trust store (keystonemiddleware's cafile). The "
        "certificate and its hostname are always verified.",
    ),
    cfg.StrOpt(
        "keystone_cert_file",
        help="PEM client certificate presented to Keystone (keystonemiddleware's "
        "certfile), with keystone_key_file.",
    ),
    cfg.StrOpt("keystone_key_file", help="Unencrypted PEM private key of keystone_cert_file."),
    cfg.StrOpt("service_username", default="nova-gateway", help="The gateway's Keystone user."),
    cfg.StrOpt("service_password", secret=True, help="Password of the gateway's Keystone user."),
    cfg.StrOpt(
        "service_project_name", default="service", help="Project the service user scopes to."
    ),
    cfg.StrOpt("service_user_domain_id", default="default", help="Domain id of the service user."),
    cfg.StrOpt(
        "service_project_domain_id",
        default="default",
        help="Domain id of the service user's project.",
    ),
    cfg.FloatOpt(
        "keystone_timeout",
        min=0.001,
        default=5.0,
        help="Seconds a Keystone call may take before the caller gets 503.",
    ),
    cfg.IntOpt(
        "token_cache_time",
        min=0,
        default=300,
        help="Seconds a validated token (keystone mode) or verified JWT (jwt mode) is "
        "cached (never past its expiry), like keystonemiddleware's token_cache_time. "
        "0 disables the cache.",
    ),
    cfg.IntOpt(
        "invalid_token_cache_time",
        min=0,
        default=30,
        help="Seconds a token Keystone refused is remembered as invalid.",
    ),
    cfg.IntOpt(
        "token_cache_size",
        min=1,
        default=10000,
        help="Most tokens held in the cache (keystone and jwt modes).",
    ),
    cfg.ListOpt(
        "jwt_key_files",
        default=[],
        help="PEM public key files for mode=jwt; re-read when they change.",
    ),
    cfg.StrOpt("jwt_jwks_file", help="A JWKS file for mode=jwt; re-read when it changes."),
    cfg.ListOpt(
        "jwt_algorithms",
        default=["RS256", "ES256", "EdDSA"],
        help="Signature algorithms accepted (never 'none', never HMAC with a public key).",
    ),
    cfg.StrOpt("jwt_issuer", help="Required iss claim."),
    cfg.StrOpt("jwt_audience", help="Required aud claim."),
    cfg.FloatOpt("jwt_leeway", min=0, default=30.0, help="Seconds of clock skew allowed."),
    cfg.StrOpt("jwt_user_claim", default="sub", help="Claim holding the user id."),
    cfg.StrOpt("jwt_project_claim", default="project_id", help="Claim holding the project id."),
    cfg.StrOpt("jwt_roles_claim", default="roles", help="Claim holding the role list."),
    cfg.StrOpt(
        "jwt_system_scope_claim",
        default="system_scope",
        help="Claim holding the system scope ('all') of a system-scoped token.",
    ),
    cfg.StrOpt("jwt_domain_claim", default="domain_id", help="Claim holding a domain scope."),
    cfg.StrOpt(
        "jwt_service_token_file",
        help="mode=jwt: file holding the token the gateway sends upstream for its own "
        "server reads (re-read when it changes).",
    ),
]

policy_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "policy_dir",
        default="policies",
        help="Directory with policy.yaml and policy.d/*.yaml in Nova's policy file format.",
    ),
    cfg.BoolOpt(
        "enforce_scope",
        default=True,
        deprecated_for_removal=True,
        deprecated_reason="oslo.policy 6, which Nova 34 runs, always checks scope; the "
        "option is gone from Nova too.",
        help="Scope (system, domain, project) is always checked against the rule's scope "
        "types, as Nova 34 does. Only true is accepted: false refuses to start.",
    ),
    cfg.BoolOpt(
        "enforce_new_defaults",
        default=True,
        help="Use Nova's current (role-based) defaults, not the deprecated ones (Nova's "
        "[oslo_policy] enforce_new_defaults; false ORs each deprecated default in).",
    ),
    cfg.FloatOpt(
        "remote_timeout",
        min=0,
        default=60.0,
        help="Seconds an http:/https: check may take (Nova's [oslo_policy] "
        "remote_timeout); a check that times out or fails refuses the call.",
    ),
    cfg.StrOpt(
        "remote_content_type",
        default="application/x-www-form-urlencoded",
        choices=("application/x-www-form-urlencoded", "application/json"),
        help="How http:/https: checks send rule, target and credentials (Nova's "
        "[oslo_policy] remote_content_type).",
    ),
    cfg.BoolOpt(
        "remote_ssl_verify_server_crt",
        default=True,
        help="https: checks verify the decision point's certificate. oslo.policy's "
        "default is false; an unverified decision point could answer for anyone.",
    ),
    cfg.StrOpt(
        "remote_ssl_ca_crt_file",
        help="CA bundle for https: checks (default: the system's).",
    ),
    cfg.StrOpt(
        "remote_ssl_client_crt_file",
        help="Client certificate https: checks present.",
    ),
    cfg.StrOpt(
        "remote_ssl_client_key_file",
        help="Key of remote_ssl_client_crt_file.",
    ),
    cfg.IntOpt(
        "remote_check_concurrency",
        min=1,
        default=8,
        help="Decisions that reach an http:/https: (or plugin) check run in a worker "
        "thread, at most this many at once per worker process; others wait.",
    ),
    cfg.FloatOpt(
        "reload_interval",
        min=0.1,
        default=2.0,
        help="Seconds between checks of the policy files for changes.",
    ),
    cfg.ListOpt(
        "dry_run_rules",
        default=[],
        mutable=True,
        help="Rule names evaluated and audited as 'would deny' but not enforced.",
    ),
    cfg.BoolOpt(
        "strict_locks",
        default=False,
        mutable=True,
        help="Locks bind admins too (except for unlock). Nova lets admins act on locked servers.",
    ),
]

server_lookup_opts: list[cfg.Opt] = [
    cfg.FloatOpt(
        "cache_ttl",
        min=0,
        default=2.0,
        help="Without a notification bus ([server_facts] notifications_url unset): seconds "
        "a server read from the upstream may back a decision to allow (Nova checks lock and "
        "state again). Refusals, site rules reading server.* and strict locks always "
        "decide on a fresh read. 0 reads every time. Unused with a bus (a warning says so).",
    ),
    cfg.IntOpt(
        "cache_size",
        min=1,
        default=10000,
        help="Without a notification bus: most servers held in the cache.",
    ),
]

server_facts_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "notifications_url",
        secret=True,
        help="Transport URL of the message bus Nova publishes its versioned notifications "
        "on, e.g. rabbit://user:password@rabbit:5672/ (oslo.messaging's form; several "
        "hosts separated by commas; amqps:// for TLS). Set, each worker keeps a mirror of "
        "server facts fed by them and reads Nova only when the mirror cannot answer. Nova "
        "needs [notifications] notification_format = versioned and notify_on_state_change "
        "= vm_and_task_state. Unset: no mirror ([server_lookup] applies).",
    ),
    cfg.StrOpt(
        "exchange",
        default="nova",
        help="Exchange Nova publishes notifications to (Nova's control_exchange).",
    ),
    cfg.ListOpt(
        "topics",
        default=["versioned_notifications"],
        help="Nova's [notifications] versioned_notifications_topics; the feed reads their "
        "info and error priorities (<topic>.info, and <topic>.error where Nova publishes "
        "an action's failure, instance.<action>.error). The same feed gives the audit "
        "trail its execution records.",
    ),
    cfg.StrOpt(
        "queue_prefix",
        default="nova-gateway-facts",
        help="Each worker reads from its own queue named <queue_prefix>.<host>.<pid>."
        "<random>.<connection>, exclusive to its connection (the broker deletes it when "
        "the worker stops or dies), bound to the topics: never Nova's shared queues.",
    ),
    cfg.IntOpt(
        "size",
        min=1,
        default=100000,
        help="Most servers each worker's mirror holds (least recently used go first).",
    ),
    cfg.FloatOpt(
        "pending_wait",
        min=0,
        default=0.05,
        help="Seconds a call waits for Nova's notification of an action this worker "
        "forwarded on the same server before reading the server from Nova instead.",
    ),
    cfg.FloatOpt(
        "max_lag",
        min=0.1,
        default=2.0,
        help="The mirror is degraded (every decision reads Nova) while the feed is "
        "disconnected or its heartbeat, which queues behind Nova's messages, is older "
        "than this many seconds. Must exceed heartbeat_interval.",
    ),
    cfg.FloatOpt(
        "heartbeat_interval",
        min=0.05,
        default=0.5,
        help="Seconds between the heartbeats each worker sends through its own queue to "
        "prove that the feed is connected and keeping up.",
    ),
]

rate_limit_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "rules_file",
        mutable=True,
        help="YAML (or JSON) file of rate-limit rules, action costs and per-project "
        "overrides (format in the README and in gateway/ratelimit/rules.py). Unset: no rate "
        "limits. Re-read on SIGHUP; a broken file keeps the running rules.",
    ),
    cfg.StrOpt(
        "storage_url",
        default="memory://",
        help="Where the counters live: memory:// (inside each worker process: every worker "
        "and replica counts alone), or shared by all workers and replicas: "
        "async+redis://[:PASSWORD@]HOST:PORT/DB; "
        "async+redis+sentinel://[:PASSWORD@]HOST:PORT,HOST:PORT,.../SERVICE (Redis with "
        "Sentinel: the gateway asks the sentinels for the primary, and again after a "
        "failover; the password is sent to the sentinels and to Redis); "
        "async+redis+cluster://[:PASSWORD@]HOST:PORT,HOST:PORT,... (Redis Cluster). "
        "Over TLS: async+rediss://, async+rediss+sentinel:// (sentinels and Redis), "
        "async+rediss+cluster://, verified with storage_ca_file. "
        "Counters are always read and written on the primary.",
    ),
    cfg.StrOpt(
        "storage_ca_file",
        help="PEM CA certificates that verify Redis's (and the sentinels') certificates "
        "with a TLS storage_url; unset: the system's trust store. The certificate and the "
        "host name (or IP address) the gateway connects to are always verified.",
    ),
    cfg.StrOpt(
        "storage_cert_file",
        help="PEM client certificate presented to Redis (tls-auth-clients), with storage_key_file.",
    ),
    cfg.StrOpt("storage_key_file", help="Unencrypted PEM private key of storage_cert_file."),
    cfg.StrOpt(
        "strategy",
        default="sliding-window-counter",
        choices=[
            (
                "sliding-window-counter",
                "the previous period's count, weighted by how much of it is still in the "
                "window, plus the current one: two numbers per counter, one Redis round trip "
                "per check whatever the limit",
            ),
            (
                "moving-window",
                "exact: keeps every request of the last period, so a check's cost grows "
                "with the limit; a Redis round trip per rule and step",
            ),
            ("fixed-window", "admits up to twice the limit across a window edge"),
        ],
        help="How requests are counted against a rule's period.",
    ),
    cfg.StrOpt(
        "key_prefix",
        default="nova_gateway",
        help="Prefix of every counter key in the shared storage.",
    ),
    cfg.FloatOpt(
        "storage_timeout",
        min=0.001,
        default=0.1,
        help="Seconds one rate-limit storage operation (connecting, a command) may take "
        "before the storage counts as down; a whole check waits at most three times this. "
        "Keep it above the event loop's lag under load, or a busy worker reads as a "
        "storage outage.",
    ),
    cfg.StrOpt(
        "storage_failure",
        default="open",
        choices=[
            ("open", "serve the request without rate limiting (and count it in the metrics)"),
            ("closed", "refuse the request with 503 and Retry-After"),
        ],
        help="What a request gets while the counter storage is down.",
    ),
    cfg.FloatOpt(
        "breaker_cooldown",
        min=0.1,
        default=5.0,
        help="After a storage failure, seconds during which no request waits for the "
        "storage (each gets the storage_failure choice at once); then one request "
        "probes it.",
    ),
]

metrics_opts: list[cfg.Opt] = [
    cfg.BoolOpt(
        "enabled",
        default=True,
        help="Count requests and serve Prometheus metrics at /metrics on the admin listener.",
    ),
    cfg.FloatOpt(
        "sample_interval",
        min=0.05,
        default=5.0,
        help="Seconds between readings of the cache, policy-reload and rate-limit storage "
        "counters into the metrics, in each worker.",
    ),
]

audit_opts: list[cfg.Opt] = [
    cfg.BoolOpt(
        "enabled",
        default=False,
        help="Keep the audit trail: one sealed record per answered request (allowed, "
        "denied, malformed, rate-limited, upstream failed) in every configured sink. "
        "Needs hmac_key_file.",
    ),
    cfg.ListOpt(
        "sinks",
        item_type=types.String(choices=["file", "messaging"]),
        default=["file"],
        help="Where records go: 'file' (append-only JSON lines in file_directory) and/or "
        "'messaging' (oslo.messaging notifications, e.g. RabbitMQ).",
    ),
    cfg.StrOpt(
        "hmac_key_file",
        help="File holding the key (at least 32 bytes, e.g. `openssl rand -hex 32`) that "
        "seals every record with HMAC-SHA256. Required when enabled: the gateway refuses "
        "to start without it. Keep it readable by the gateway (and verifiers) only.",
    ),
    cfg.StrOpt(
        "failure_mode",
        choices=[
            ("fail-closed", "refuse new requests (503) while a sink is failing or full"),
            ("fail-open", "serve anyway; count and log records that could not be queued"),
        ],
        default="fail-closed",
        help="What a failing or full sink does to new requests. Either way no accepted "
        "record is dropped: the failed sink is retried until it recovers.",
    ),
    cfg.IntOpt(
        "queue_size",
        min=1,
        default=10000,
        help="Records each worker holds for its slowest sink before new requests wait "
        "(back-pressure) and then, fail-closed, are refused.",
    ),
    cfg.FloatOpt(
        "backpressure_timeout",
        min=0,
        default=1.0,
        help="Seconds a new request waits for room in a full audit queue.",
    ),
    cfg.FloatOpt(
        "retry_interval",
        min=0.01,
        default=1.0,
        help="Longest pause between retries of a failed sink (retries start at 1/20 of it "
        "and back off).",
    ),
    cfg.FloatOpt(
        "flush_timeout",
        min=0,
        default=30.0,
        help="On SIGTERM, seconds to wait for the sinks to take every pending record; what "
        "a failed sink still holds then is written to the process log instead.",
    ),
    cfg.StrOpt(
        "write_ahead",
        choices=[
            ("mutating", "every forwarded call except GET, HEAD and OPTIONS"),
            ("all", "every forwarded call"),
            ("off", "one record after the answer, as for refusals"),
        ],
        default="mutating",
        help="Calls whose decision record is stored in every sink (written, synced as "
        "file_fsync says, confirmed by the broker) before they are forwarded; their "
        "outcome record follows the answer. Concurrent calls share one write and sync.",
    ),
    cfg.FloatOpt(
        "write_ahead_timeout",
        min=0.01,
        default=5.0,
        help="Seconds a call waits for its decision record to be stored before it is "
        "refused (503, fail-closed) or forwarded anyway (fail-open).",
    ),
    cfg.StrOpt(
        "witness_directory",
        help="A second directory (another disk or mount than file_directory) where each "
        "worker publishes its chains' heads; `audit verify --witness-dir` then tells a cut "
        "tail from a live chain.",
    ),
    cfg.StrOpt(
        "witness_redis_url",
        secret=True,
        help="Redis URL (redis://host:6379/0) where each worker publishes its chains' "
        "heads, one key per chain; with witness_directory too, both get them. Over TLS: "
        "rediss://host:6380/0?ssl_ca_certs=/path/ca.pem (redis-py's URL parameters; "
        "ssl_certfile and ssl_keyfile for a client certificate); the certificate and "
        "hostname are verified.",
    ),
    cfg.StrOpt(
        "witness_key_prefix",
        default="nova-gateway:audit:witness:",
        help="Prefix of the witness keys in Redis (followed by the chain id).",
    ),
    cfg.IntOpt(
        "witness_every",
        min=1,
        default=1000,
        help="A writer never stores more than this many records past the head its "
        "witnesses hold: the most records a cut tail can hide.",
    ),
    cfg.FloatOpt(
        "witness_interval",
        min=0.05,
        default=1.0,
        help="Seconds between publications of a chain head that moved.",
    ),
    cfg.ListOpt(
        "redact_fields",
        default=[],
        mutable=True,
        help="Further body keys (case-insensitive, at any depth) whose values never reach a "
        "sink. Keys containing password/secret/token, adminPass, user_data and "
        "personality contents are always redacted.",
    ),
    cfg.StrOpt(
        "file_directory",
        default="/var/log/nova-gateway/audit",
        help="Directory of the file sink. Each worker writes its own files, named "
        "audit-<host>-<pid>-<start>-<random>-<index>.jsonl; rotation starts the next index.",
    ),
    cfg.StrOpt(
        "file_format",
        choices=[("json", "the gateway's record"), ("cadf", "a CADF event (pycadf)")],
        default="json",
        help="Record format of the file sink.",
    ),
    cfg.StrOpt(
        "file_fsync",
        choices=[
            ("never", "leave flushing to the kernel"),
            ("interval", "fsync every file_fsync_interval seconds"),
            ("every-record", "fsync before the writer takes more records"),
        ],
        default="interval",
        help="When the file sink forces its records to disk.",
    ),
    cfg.FloatOpt(
        "file_fsync_interval",
        min=0.01,
        default=1.0,
        help="Seconds between fsyncs with file_fsync = interval.",
    ),
    cfg.IntOpt(
        "file_rotate_bytes",
        min=0,
        default=100 * 1024 * 1024,
        help="Start a new audit file past this size in bytes; 0 never.",
    ),
    cfg.IntOpt(
        "file_rotate_seconds",
        min=0,
        default=86400,
        help="Start a new audit file when the current one is this many seconds old; 0 never.",
    ),
    cfg.StrOpt(
        "messaging_transport_url",
        secret=True,
        help="oslo.messaging transport URL of the messaging sink, e.g. "
        "rabbit://user:password@rabbit:5672/. Required with the messaging sink. TLS and "
        "the other driver settings come from oslo.messaging's own [oslo_messaging_rabbit] "
        "options in this file (ssl, ssl_ca_file, ssl_cert_file, ssl_key_file), as in "
        "nova.conf.",
    ),
    cfg.ListOpt(
        "messaging_topics",
        default=["notifications"],
        help="Notification topics; records are published at priority info (<topic>.info), "
        "as keystonemiddleware's audit notifier does.",
    ),
    cfg.StrOpt(
        "messaging_exchange",
        help="Exchange the records are published to; unset: oslo.messaging's control "
        "exchange ('openstack'). A private exchange keeps the trail's durability settings "
        "(e.g. ?amqp_durable_queues=true on the transport URL) from meeting other "
        "services' declarations of a shared one.",
    ),
    cfg.StrOpt(
        "messaging_driver",
        choices=[("messagingv2", "message format 2.0"), ("messaging", "message format 1.0")],
        default="messagingv2",
        help="Notification message format.",
    ),
    cfg.StrOpt(
        "messaging_format",
        choices=[("json", "the gateway's record"), ("cadf", "a CADF event (pycadf)")],
        default="cadf",
        help="Record format of the messaging sink; cadf events have event type "
        "audit.http.response, like keystonemiddleware's.",
    ),
]

OPT_GROUPS: dict[str, list[cfg.Opt]] = {
    "gateway": gateway_opts,
    "upstream": upstream_opts,
    "limits": limit_opts,
    "identity": identity_opts,
    "policy": policy_opts,
    "server_lookup": server_lookup_opts,
    "server_facts": server_facts_opts,
    "rate_limit": rate_limit_opts,
    "metrics": metrics_opts,
    "audit": audit_opts,
}

# Flags accepted on the command line as well as in the file.
CLI_FLAGS: dict[str, tuple[str, str]] = {
    "upstream-url": ("upstream", "url"),
    "listen": ("gateway", "listen"),
    "admin-listen": ("gateway", "admin_listen"),
    "workers": ("gateway", "workers"),
    "identity": ("identity", "mode"),
    "policy-dir": ("policy", "policy_dir"),
}


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace nova_gateway)."""
    return [(group, list(opts)) for group, opts in OPT_GROUPS.items()]


def _cli_opts() -> list[cfg.Opt]:
    return [
        cfg.StrOpt(flag, dest=f"cli_{group}_{name}", help=f"Same as [{group}] {name}.")
        for flag, (group, name) in CLI_FLAGS.items()
    ]


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in OPT_GROUPS.items():
        conf.register_opts(opts, group=group)
    return conf


class ConfigError(Exception):
    """Configuration the gateway refuses to start with; the message names the option."""


def load(argv: Sequence[str], conf: cfg.ConfigOpts | None = None) -> cfg.ConfigOpts:
    """Parse --config-file/--config-dir and the CLI flags; raise ConfigError if invalid."""
    conf = conf or make_conf()
    conf.register_cli_opts(_cli_opts())
    try:
        conf(list(argv), project="nova-gateway", default_config_files=[])
        for _flag, (group, name) in CLI_FLAGS.items():
            value = getattr(conf, f"cli_{group}_{name}")
            if value is not None:
                conf.set_override(name, value, group=group)
        validate(conf)
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    return conf


def validate(conf: cfg.ConfigOpts) -> None:
    """Cross-option checks oslo.config's types cannot express."""
    for group, opts in OPT_GROUPS.items():
        for opt in opts:
            try:
                getattr(conf[group], opt.dest)
            except (cfg.Error, ValueError) as exc:
                raise ConfigError(f"[{group}] {opt.name}: {exc}") from exc
    for entry in conf.gateway.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"[gateway] trusted_proxies: {entry!r} is not an address or CIDR"
            ) from None
    url = conf.upstream.url
    if url and not urlsplit(url).hostname:
        raise ConfigError(f"[upstream] url: {url!r} has no host")
    for name in ("min_version", "max_version"):
        text = getattr(conf.upstream, name)
        if text:
            try:
                Version.parse(text)
            except ValueError:
                raise ConfigError(f"[upstream] {name}: {text!r} is not X.Y") from None
    _validate_audit(conf)
    validate_policy(conf)
    _validate_server_facts(conf)
    _validate_listener_tls(conf)


def _validate_listener_tls(conf: cfg.ConfigOpts) -> None:
    """A certificate needs its key, and mutual TLS needs TLS: never half a listener."""
    group = conf.gateway
    for prefix in ("tls", "admin_tls"):
        cert, key = getattr(group, f"{prefix}_cert_file"), getattr(group, f"{prefix}_key_file")
        if bool(cert) != bool(key):
            missing, given = ("key", "cert") if cert else ("cert", "key")
            raise ConfigError(
                f"[gateway] {prefix}_{missing}_file: required with {prefix}_{given}_file"
            )
    if group.admin_tls_client_ca_file and not group.admin_tls_cert_file:
        raise ConfigError(
            "[gateway] admin_tls_client_ca_file: needs admin_tls_cert_file and "
            "admin_tls_key_file (mutual TLS is TLS first)"
        )


def validate_policy(conf: cfg.ConfigOpts) -> None:
    """Refuse a policy mode Nova 34 cannot run in: the gateway never decides under it."""
    if not conf.policy.enforce_scope:
        raise ConfigError(
            "[policy] enforce_scope: false is not supported: oslo.policy 6, which Nova 34 "
            "runs, always checks a rule's scope types (the option is gone); remove it"
        )


def _validate_server_facts(conf: cfg.ConfigOpts) -> None:
    group = conf.server_facts
    if not group.notifications_url:
        return
    if group.max_lag <= group.heartbeat_interval:
        raise ConfigError(
            "[server_facts] max_lag: must exceed heartbeat_interval "
            f"({group.max_lag:g} <= {group.heartbeat_interval:g})"
        )
    if not group.topics:
        raise ConfigError("[server_facts] topics: at least one topic is needed")
    prefix = group.queue_prefix
    if not prefix or prefix.startswith("amq.") or len(prefix) > 100:
        raise ConfigError(
            f"[server_facts] queue_prefix: {prefix!r} must be 1-100 characters and not "
            "start with amq. (reserved by the broker)"
        )


def _validate_audit(conf: cfg.ConfigOpts) -> None:
    """An enabled trail needs a usable key and a destination for every sink."""
    group = conf.audit
    if not group.enabled:
        return
    if not group.sinks:
        raise ConfigError("[audit] sinks: auditing is enabled but no sink is configured")
    if not group.hmac_key_file:
        raise ConfigError("[audit] hmac_key_file: required when [audit] enabled = true")
    # The key file's contents are checked by the audit trail at start-up (cli.py).
    if "messaging" in group.sinks and not group.messaging_transport_url:
        raise ConfigError("[audit] messaging_transport_url: required with the messaging sink")
    witness = group.witness_directory
    if witness and os.path.abspath(os.path.expanduser(witness)) == os.path.abspath(
        os.path.expanduser(group.file_directory)
    ):
        # A head kept beside the files it vouches for goes wherever they go.
        raise ConfigError(
            "[audit] witness_directory: must not be file_directory (use another disk or mount)"
        )


def worker_count(conf: cfg.ConfigOpts) -> int:
    return int(conf.gateway.workers) or (os.cpu_count() or 1)
