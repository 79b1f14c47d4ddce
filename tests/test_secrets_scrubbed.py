"""Secrets scrubbed at the boundary (issue 11): each sandbox echoes its request headers in an error
(`Fault.ECHO_HEADERS`, as a reflecting PSA or proxy does); after a sync (PSAs) or a refresh (Pax8)
the configured secret, the credential headers' values and the Basic/Bearer credentials appear in
none of: the store's files, the audit trail, the journal, the log, `trueup audit`."""

from __future__ import annotations

import base64
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from engine.connectors.autotask import AutotaskConnector
from engine.connectors.connectwise import ConnectWiseConnector
from engine.connectors.halopsa import HaloConnector
from engine.connectors.pax8 import Pax8Connector
from engine.reconcile import reconcile
from engine.refresh import refresh
from engine.sandbox.autotask import AutotaskSandbox
from engine.sandbox.connectwise import ConnectWiseSandbox
from engine.sandbox.faults import Fault, Faults
from engine.sandbox.halopsa import HaloSandbox
from engine.sandbox.pax8 import Pax8Sandbox
from engine.scrub import REDACTED, install_log_redaction, redact
from engine.settings import SECRETS, get_secret
from engine.store import Store
from engine.sync import SyncExecutor
from tui.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent / "sync"))
from sync_builder import AS_OF, build_scenario, is_write  # noqa: E402

SECRET = {name: f"Zq7-{name}-s3cret-VALUE-91" for name in SECRETS}


async def no_sleep(_seconds: float) -> None:
    return None


class Echoing:
    """Wraps a sandbox's handler: the chosen requests are answered with their headers echoed."""

    def __init__(self, sandbox: Any, faults: Faults, which: Any) -> None:
        self.sandbox, self.faults, self.which = sandbox, faults, which
        self.echoed: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.which(request):
            self.faults.push(Fault.ECHO_HEADERS)
        response = await self.sandbox.handle(request)
        if response.status_code == 400 and "The request carried" in response.text:
            self.echoed.append(response.text)
        return response


def psa_world(psa: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, Echoing]:
    monkeypatch.setenv(SECRETS[psa].env, SECRET[psa])
    secret = get_secret(psa)  # the way the workspace reads it: registers it for the redaction
    assert secret is not None and secret.get_secret_value() == SECRET[psa]
    scenario = build_scenario(psa, new=4, updates=1, cancels=1, create_new=0, record_only=0, companies=2)
    faults = Faults()
    if psa == "connectwise":
        sb: Any = ConnectWiseSandbox.from_scenario(scenario, faults=faults, private_key=SECRET[psa])
        echo = Echoing(sb, faults, is_write)
        connector: Any = ConnectWiseConnector(
            sb.site,
            sb.company_id,
            sb.public_key,
            SECRET[psa],
            sb.client_id,
            codebase=sb.codebase,
            transport=httpx.MockTransport(echo),
            sleep=no_sleep,
        )
    elif psa == "halopsa":
        sb = HaloSandbox.from_scenario(scenario, faults=faults, client_secret=SECRET[psa])
        echo = Echoing(sb, faults, is_write)
        connector = HaloConnector(
            sb.base_url,
            sb.client_id,
            SECRET[psa],
            tenant=sb.tenant,
            transport=httpx.MockTransport(echo),
            sleep=no_sleep,
        )
    else:
        sb = AutotaskSandbox.from_scenario(scenario, faults=faults, secret=SECRET[psa])
        if sb.faults is None:
            sb.faults = faults
        echo = Echoing(sb, faults, is_write)
        connector = AutotaskConnector(
            sb.username,
            SECRET[psa],
            sb.integration_code,
            zone_url=sb.zone_url,
            transport=httpx.MockTransport(echo),
            sleep=no_sleep,
        )
    return scenario, connector, echo


def leaks(text: str, needles: set[str]) -> list[str]:
    return [n for n in needles if n and n in text]


def credentials_in(echoed: list[str]) -> set[str]:
    """The credential values the service reflected (what must not be found anywhere after)."""
    found = set()
    for text in echoed:
        for name in ("authorization", "secret", "apiintegrationcode"):
            for value in re.findall(rf"(?im)^{name}: (.+)$", text):
                found.add(value.strip())
                found.update(part for part in value.split() if len(part) > 8)
    return found


def store_bytes(url: str) -> str:
    path = Path(url.removeprefix("sqlite:///"))
    return "".join(p.read_bytes().decode("latin-1") for p in path.parent.glob(path.name + "*"))


@pytest.mark.parametrize("psa", ["connectwise", "halopsa", "autotask"])
async def test_a_psa_echoing_its_headers_leaves_no_secret_behind(
    psa: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    log_file = tmp_path / "trueup.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        scenario, connector, echo = psa_world(psa, monkeypatch)
        url = f"sqlite:///{tmp_path / 'store.db'}"
        store = Store(url)
        store.import_scenario(scenario)
        lines = reconcile(*store.plan_inputs(AS_OF)).lines
        assert lines
        report = await SyncExecutor(store, connector).run(list(lines))
        await connector.aclose()
        logging.getLogger("engine.test").warning(
            "sync ended: %s", "; ".join(o.message or "" for o in report.outcomes)
        )
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    # The service did reflect the secret (else this test could not fail)…
    assert echo.echoed, "no write was answered with an echo"
    reflected = credentials_in(echo.echoed)
    needles = {SECRET[psa], *reflected}
    if psa == "connectwise":
        assert any(
            base64.b64decode(v.split()[-1]).decode().endswith(SECRET[psa])
            for v in reflected
            if v.lower().startswith("basic ")
        )
    elif psa == "autotask":
        assert any(f"secret: {SECRET[psa]}".lower() in text.lower() for text in echo.echoed)
    else:  # Halo: the secret buys a token (in the token request's body); the calls carry the token
        assert any(v.lower().startswith("bearer ") for v in reflected)
    # …and it is nowhere now.
    from engine import audit
    from engine.sync.journal import Journal

    journal = Journal(store).rows()
    assert journal and any(REDACTED in (row.message or "") for row in journal)
    with store.session() as s:
        events = audit.events(s)
    assert events
    trail = "\n".join(f"{e.subject} {e.before} {e.after}" for e in events)
    assert REDACTED in trail
    assert leaks(trail, needles) == []
    assert leaks("\n".join(f"{r.message} {r.request} {r.found}" for r in journal), needles) == []
    assert leaks("\n".join(o.message or "" for o in report.outcomes), needles) == []
    store.close()
    assert leaks(store_bytes(url), needles) == []
    assert leaks(caplog.text, needles) == [] and leaks(log_file.read_text(), needles) == []
    shown = CliRunner().invoke(main, ["--db", url, "audit"])
    assert shown.exit_code == 0 and REDACTED in shown.output
    assert leaks(shown.output, needles) == []


async def test_pax8_echoing_its_headers_leaves_no_token_or_secret_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(SECRETS["pax8"].env, SECRET["pax8"])
    assert get_secret("pax8") is not None
    scenario = build_scenario(
        "connectwise", new=2, updates=0, cancels=0, create_new=0, record_only=0, companies=1
    )
    faults = Faults()
    sandbox = Pax8Sandbox.from_scenario(scenario, faults=faults, client_secret=SECRET["pax8"])
    echo = Echoing(sandbox, faults, lambda r: r.method == "GET" and "/companies" in r.url.path)
    vendor = Pax8Connector(
        sandbox.client_id, SECRET["pax8"], transport=httpx.MockTransport(echo), sleep=no_sleep
    )
    psa_sb = ConnectWiseSandbox.from_scenario(scenario)
    psa = ConnectWiseConnector(
        psa_sb.site,
        psa_sb.company_id,
        psa_sb.public_key,
        psa_sb.private_key,
        psa_sb.client_id,
        codebase=psa_sb.codebase,
        transport=httpx.MockTransport(psa_sb.handle),
        sleep=no_sleep,
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    result = await refresh(
        store, vendor, psa, full=True, today=AS_OF, clock=lambda: datetime(2026, 3, 10, 9, tzinfo=UTC)
    )
    await vendor.aclose()
    await psa.aclose()
    assert echo.echoed and result.errors
    tokens = {v.split()[-1] for v in credentials_in(echo.echoed) if v.lower().startswith("bearer ")}
    assert tokens  # the access token was reflected…
    needles = {SECRET["pax8"], *tokens}
    assert leaks("\n".join(result.errors), needles) == [] and REDACTED in "\n".join(result.errors)
    logging.getLogger("engine.refresh").warning("refresh errors: %s", result.errors)
    logging.getLogger("engine.test").info(
        "raw echo: %s", echo.echoed[0]
    )  # even a raw echo logged is redacted
    store.close()
    assert leaks(store_bytes(url), needles) == []
    assert leaks(caplog.text, needles) == []


def test_redact_knows_the_credential_headers_and_the_configured_secrets() -> None:
    from engine.scrub import register_secret

    register_secret("configured-secret-4242")
    basic = base64.b64encode(b"acme+public:configured-secret-4242").decode()
    text = (
        f"Authorization: Basic {basic}\nSecret: abc\nApiIntegrationCode: XYZ123\n"
        '{"client_secret": "cs-1", "access_token": "tok-1"} url postgresql://u:pw-99@db/x '
        "bare configured-secret-4242 and Bearer eyJhbGciOi.abc.def"
    )
    out = redact(text)
    for needle in (
        basic,
        "abc\n",
        "XYZ123",
        "cs-1",
        "tok-1",
        "pw-99",
        "configured-secret-4242",
        "eyJhbGciOi",
    ):
        assert needle not in out, needle
    assert out.count(REDACTED) == 8
    assert redact("no client secret configured; set TRUEUP_PAX8_CLIENT_SECRET") == (
        "no client secret configured; set TRUEUP_PAX8_CLIENT_SECRET"
    )
