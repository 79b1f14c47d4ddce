"""The sandbox services over real HTTP on loopback, so the real `trueup` CLI — a separate process
that can be killed with SIGKILL — talks to them as it would to Pax8 and a PSA.

    python -m engine.sandbox.serve --psa halopsa --dir /tmp/run [--as-of 2026-12-01]

seeds the demo MSP into a Pax8 sandbox and the chosen PSA's sandbox, serves each on its own
`127.0.0.1` port, and writes into `--dir`:

* `trueup.toml`: a real (not sandbox) configuration whose URLs point at the servers, and whose
  store is `--dir/trueup.db`, already holding the operator's state (mappings, bindings, settings);
* `env.json`: the secrets to export (`TRUEUP_PAX8_CLIENT_SECRET`, …) — secrets never go in the file;
* `ready.json` last, once the servers answer: their URLs and the process id.

It runs until it is terminated (SIGTERM/SIGINT). `GET /__sandbox__/stats` on each server answers
`{"requests": n, "writes": n}` (writes: every request that is not a read — a POST query is a read),
which a kill test polls to kill the client in the middle of a sync.

The sandbox handlers are the ones `httpx.MockTransport` serves in-process (`engine/sandbox/*`): a
request is rebuilt with the service's own origin (`https://api.pax8.com`, the PSA's host) and the
service's absolute URLs in a response (Autotask's `nextPageUrl`, ConnectWise's `Link`, Halo's
`auth_url`) are rewritten to the served origin, so paging and authentication follow real links.
Only loopback addresses are ever bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from engine.psa import PSA_NAMES, psa_spec
from engine.scenario import Psa, Scenario, Vendor

STATS_PATH = "/__sandbox__/stats"
LOOPBACK = "127.0.0.1"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


def _is_write(method: str, path: str) -> bool:
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    low = path.lower()
    return not (low.endswith("/query") or low.endswith("/query/count") or low.endswith("/token"))


@dataclass
class ServedService:
    """One sandbox service on one loopback port."""

    name: str
    origin: str  # the service's own origin, e.g. https://api.pax8.com
    handle: Handler
    loop: asyncio.AbstractEventLoop
    server: ThreadingHTTPServer | None = None
    requests: int = 0
    writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address is (host, port)
        return f"http://{host}:{port}"

    def serve(self) -> None:
        service = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                return  # quiet: the sandbox keeps its own request list

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path == STATS_PATH:
                    with service.lock:
                        stats = {"requests": service.requests, "writes": service.writes}
                    self._send(httpx.Response(200, json=stats))
                    return
                with service.lock:
                    service.requests += 1
                    if _is_write(self.command, urlsplit(self.path).path):
                        service.writes += 1
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
                request = httpx.Request(
                    self.command, service.origin + self.path, headers=headers, content=body
                )
                future = asyncio.run_coroutine_threadsafe(service.handle(request), service.loop)
                try:
                    response = future.result(timeout=60)
                except Exception as exc:  # a sandbox bug: answer as a server would, never hang
                    response = httpx.Response(500, json={"message": f"sandbox error: {type(exc).__name__}"})
                self._send(response)

            def _send(self, response: httpx.Response) -> None:
                content = response.content
                served = service.url
                if service.origin.encode() in content:
                    content = content.replace(service.origin.encode(), served.encode())
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() in _HOP_BY_HOP:
                        continue
                    self.send_header(key, value.replace(service.origin, served))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer  # noqa: N815 - the stdlib's names

        self.server = ThreadingHTTPServer((LOOPBACK, 0), RequestHandler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name=f"sandbox-{self.name}", daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class ServedSandbox:
    """The Pax8 sandbox and one PSA sandbox served over HTTP, with what a client needs to reach them."""

    scenario: Scenario
    psa: str
    services: dict[str, ServedService]
    sandboxes: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def config_toml(self, database_url: str) -> str:
        pax8 = self.sandboxes["pax8"]
        psa = self.sandboxes[self.psa]
        lines = [
            f"database_url = {json.dumps(database_url)}",
            "",
            "[vendor.pax8]",
            f"client_id = {json.dumps(pax8.client_id)}",
            f"base_url = {json.dumps(self.services['pax8'].url + '/v1')}",
            "",
            "[vendor.product_kinds]",
            *(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in sorted(pax8.product_kinds().items())),
            "",
            "[psa]",
            f"kind = {json.dumps(self.psa)}",
            f"[psa.{self.psa}]",
        ]
        served = self.services[self.psa].url
        if self.psa == "halopsa":
            lines += [f"base_url = {json.dumps(served)}", f"client_id = {json.dumps(psa.client_id)}"]
            if psa.tenant:
                lines.append(f"tenant = {json.dumps(psa.tenant)}")
        elif self.psa == "autotask":
            zone_path = urlsplit(psa.zone_url).path.rstrip("/")
            lines += [
                f"username = {json.dumps(psa.username)}",
                f"integration_code = {json.dumps(psa.integration_code)}",
                f"zone_url = {json.dumps(served + zone_path + '/v1.0/')}",
            ]
        else:
            lines += [
                f"site = {json.dumps(served)}",
                f"company_id = {json.dumps(psa.company_id)}",
                f"public_key = {json.dumps(psa.public_key)}",
                f"client_id = {json.dumps(psa.client_id)}",
                f"codebase = {json.dumps(psa.codebase)}",
            ]
        return "\n".join(lines) + "\n"

    def secrets(self) -> dict[str, str]:
        """The environment variables that carry the secrets (engine/settings.py's table)."""
        psa = self.sandboxes[self.psa]
        value = {  # each sandbox's own attribute for the PSA's secret
            "connectwise": getattr(psa, "private_key", ""),
            "halopsa": getattr(psa, "client_secret", ""),
            "autotask": getattr(psa, "secret", ""),
        }[self.psa]
        return {
            "TRUEUP_PAX8_CLIENT_SECRET": self.sandboxes["pax8"].client_secret,
            psa_spec(self.psa).secret_env: value,
        }

    def seed_store(self, database_url: str) -> None:
        """The operator's state of the demo (mappings, bindings, settings, products' attributes) in a
        store that a real configuration opens — without the sandbox marker, as a partner's would be."""
        from engine.store import Store

        state = self.scenario.model_copy(
            update={
                "vendor": Vendor(
                    products=self.scenario.vendor.products,
                    billing_configurations=self.scenario.vendor.billing_configurations,
                ),
                "psa": Psa(),
            }
        )
        store = Store(database_url)
        try:
            store.import_scenario(state)
        finally:
            store.close()

    def close(self) -> None:
        for service in self.services.values():
            service.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def serve(scenario: Scenario, psa: str, *, rate_limits: bool = True) -> ServedSandbox:
    """Start the Pax8 sandbox and `psa`'s sandbox, seeded from `scenario`, on loopback ports.

    `rate_limits=False` drops Pax8's 1000 calls per rolling minute (engine/sandbox/pax8.py): each
    trueup process keeps its own client budget, so several processes started within a minute
    against one tenant (the kill harness starts four) are refused as they would be by Pax8 — which
    tests the back-off, not the kill."""
    from engine.sandbox.pax8 import Pax8Sandbox
    from engine.workspace import _psa_sandbox, _seedable

    psa_spec(psa)  # a ValueError naming the known PSAs for any other name
    scenario = scenario.model_copy(update={"settings": scenario.settings.model_copy(update={"psa": psa})})
    seeded = _seedable(scenario)
    pax8 = (
        Pax8Sandbox.from_scenario(seeded)
        if rate_limits
        else Pax8Sandbox.from_scenario(seeded, rate_limit=None)
    )
    psa_sandbox, _ = _psa_sandbox(psa, seeded, None)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sandbox-loop", daemon=True)
    thread.start()
    origins = {
        "pax8": "https://api.pax8.com",
        "connectwise": f"https://{getattr(psa_sandbox, 'site', '')}",
        "halopsa": getattr(psa_sandbox, "base_url", ""),
        "autotask": "{0.scheme}://{0.netloc}".format(urlsplit(getattr(psa_sandbox, "zone_url", "https://x"))),
    }
    services = {
        "pax8": ServedService("pax8", origins["pax8"], pax8.handle, loop),
        psa: ServedService(psa, origins[psa].rstrip("/"), psa_sandbox.handle, loop),
    }
    for service in services.values():
        service.serve()
    return ServedSandbox(scenario, psa, services, {"pax8": pax8, psa: psa_sandbox}, loop, thread)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.sandbox.serve", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--psa", choices=PSA_NAMES, required=True)
    parser.add_argument(
        "--dir", type=Path, required=True, help="where trueup.toml, env.json and ready.json go"
    )
    parser.add_argument(
        "--as-of", type=date.fromisoformat, default=None, help="the demo's date (default today)"
    )
    parser.add_argument("--scale", type=int, default=None, help="the demo MSP's scale (build_demo_scenario)")
    parser.add_argument(
        "--no-rate-limits",
        action="store_true",
        help="drop Pax8's per-minute limit (several short-lived clients in one minute)",
    )
    args = parser.parse_args(argv)
    from engine.sandbox.demo import build_demo_scenario

    today = date.today()  # noqa: DTZ011 (the operator's calendar day, as the CLI's --as-of default)
    scenario = build_demo_scenario(as_of=args.as_of or today, psa=args.psa, scale=args.scale)
    served = serve(scenario, args.psa, rate_limits=not args.no_rate_limits)
    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{directory / 'trueup.db'}"
    served.seed_store(database_url)
    (directory / "trueup.toml").write_text(served.config_toml(database_url))
    (directory / "env.json").write_text(json.dumps(served.secrets()))
    ready = {
        "pid": os.getpid(),
        "urls": {name: s.url for name, s in served.services.items()},
        "as_of": scenario.as_of.isoformat(),
    }
    (directory / "ready.json.tmp").write_text(json.dumps(ready))
    os.replace(directory / "ready.json.tmp", directory / "ready.json")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    served.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
