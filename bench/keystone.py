"""A stand-in Keystone for bench.run's operator row: v3 token validation, answered at once.

Owns the two calls the gateway makes (POST /v3/auth/tokens for its own token, GET for a
caller's): every token ``<user>:<project>[:<roles>]`` is valid for an hour, as novasim
reads the same tokens; it must never be used outside the benchmark (it accepts anyone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web

SERVICE_TOKEN = "nova-gateway:service:admin"
LIFETIME_SECONDS = 3600


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(epoch))


def token_body(token: str) -> dict[str, object]:
    user, _, rest = token.partition(":")
    project, _, roles = rest.partition(":")
    names = roles.split(",") if roles else ["member", "reader"]
    now = time.time()
    domain = {"id": "default", "name": "Default"}
    return {
        "token": {
            "methods": ["password"],
            "user": {"id": user, "name": user, "domain": domain},
            "project": {"id": project, "name": project, "domain": domain},
            "roles": [{"id": name, "name": name} for name in names],
            "issued_at": _stamp(now),
            "expires_at": _stamp(now + LIFETIME_SECONDS),
            "is_admin_project": False,
        }
    }


def make_app() -> web.Application:
    app = web.Application()
    app["validations"] = 0

    async def issue(request: web.Request) -> web.Response:
        await request.read()
        body = json.dumps(token_body(SERVICE_TOKEN))
        return web.Response(
            status=201,
            text=body,
            content_type="application/json",
            headers={"X-Subject-Token": SERVICE_TOKEN},
        )

    async def validate(request: web.Request) -> web.Response:
        app["validations"] += 1
        token = request.headers.get("X-Subject-Token", "")
        if token.count(":") not in (1, 2):
            return web.Response(status=404)
        return web.json_response(token_body(token))

    async def count(_: web.Request) -> web.Response:
        return web.json_response({"validations": app["validations"]})

    app.router.add_post("/v3/auth/tokens", issue)
    app.router.add_get("/v3/auth/tokens", validate)
    app.router.add_get("/_validations", count)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.keystone", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.set_event_loop_policy(None)

    def ready(*_: object) -> None:
        print(f"READY http://127.0.0.1:{args.port}/v3", flush=True)

    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=ready)


if __name__ == "__main__":
    main()
