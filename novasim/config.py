"""The simulator's settings, declared once as one immutable value.

Owns option names, defaults and their meaning; it must never act on a value (the
modules that own each behaviour read the field they need).
"""

from __future__ import annotations

from dataclasses import dataclass

# oslo_middleware's [oslo_middleware] max_request_body_size default, which Nova keeps.
NOVA_MAX_BODY_SIZE = 114688


@dataclass(frozen=True)
class SimConfig:
    """How one simulator instance behaves.

    ``settle_delay`` is how long a transitional task state (pausing, rebooting, ...)
    lasts before the server reaches its end state; 0 settles before the answer is sent,
    so tests are deterministic. ``seed`` creates that many ACTIVE servers in each of
    ``seed_projects``, like realnova's SEED_SERVERS. ``max_recorded_requests`` bounds the
    request recorder (oldest dropped first).
    """

    settle_delay: float = 0.0
    seed: int = 0
    seed_projects: tuple[str, ...] = ("p1", "p2")
    max_recorded_requests: int = 10000
    max_body_size: int = NOVA_MAX_BODY_SIZE
    # realnova's LAB_TRUST_IDENTITY_HEADERS: with no token, accept X-User-Id/X-Project-Id/
    # X-Roles as a trusted front would set them. Off by default, as in the lab.
    trust_identity_headers: bool = False
    # Nova's default shelved_offload_time=0 offloads a shelved server at once (realnova
    # never shows SHELVED); False stops at SHELVED so shelveOffload can be exercised.
    offload_on_shelve: bool = True
    # Where createImage (< 2.45) points its Location header: the image service endpoint.
    image_service_url: str = "http://localhost:9292"
    # A RabbitMQ transport URL (rabbit://user:pass@host:5672/): publish Nova's versioned
    # notifications there, as realnova does with NOVA_LAB_NOTIFY_URL. None: publish nothing.
    notify_url: str | None = None
    notify_exchange: str = "nova"
    notify_topic: str = "versioned_notifications"
