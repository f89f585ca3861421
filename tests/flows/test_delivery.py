"""Delivery against real servers on loopback: an SMTP server with STARTTLS and login
(aiosmtpd, a certificate made for the test), and HTTP servers standing in for a webhook.
Then the alerts after a run: sent once, grouped, kept when every channel failed, and a failed
run notified with its reason."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from flows.alerts import notify_alerts, run_and_notify
from flows.deliver import Channels, Message, deliver
from flows.pipeline import PipelineError
from flows.report import build_report, report_message, write_report
from flows.settings import Settings
from warehouse.store import state_path_for

USER, PASSWORD = "reporter", "s3cret-not-logged"


class Mailbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[arg-type]
        )
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (USER, PASSWORD)
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok)


@pytest.fixture
def smtp(tmp_path: Path, free_tcp_port: int) -> Iterator[tuple[Mailbox, Channels]]:
    """A real SMTP server on loopback that requires STARTTLS and a login."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="localhost",
        port=free_tcp_port,
        tls_context=tls,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_required=True,
    )
    controller.start()
    channels = Channels(
        smtp_host="localhost",
        smtp_port=free_tcp_port,
        smtp_ca_file=str(cert),
        smtp_user=USER,
        smtp_password=PASSWORD,
        mail_from="agentkpi@example.org",
        mail_to=("cfo@example.org", "ops@example.org"),
        retries=1,
        retry_delay_s=0.01,
    )
    try:
        yield mailbox, channels
    finally:
        controller.stop()


class Hook:
    """An HTTP server on loopback that records JSON posts; it answers `fail_first` posts
    with 500 first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[dict] = []
        self.failures_left = fail_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.failures_left > 0:
                    hook.failures_left -= 1
                    self.send_response(500)
                else:
                    hook.posts.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook(fail_first=2)
    try:
        yield server
    finally:
        server.close()


def _dead_url() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    return f"http://127.0.0.1:{port}/hook"


# ---------------------------------------------------------------------------------------------
# Reports


def test_a_report_arrives_by_email_with_its_alternative_and_charts(
    flawed_run, smtp, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    mailbox, channels = smtp
    settings, _ = flawed_run
    report = build_report(settings.warehouse, "day")
    written = write_report(report, tmp_path / "reports")
    deliveries = deliver(report_message(report, written, str(written.html)), channels)
    assert [(d.channel, d.ok) for d in deliveries] == [("email", True)]
    assert mailbox.logins == [USER]  # logged in, over STARTTLS (the server requires both)
    (mail,) = mailbox.messages
    assert mail["Subject"] == report.title
    assert mail["To"] == "cfo@example.org, ops@example.org"
    text = mail.get_body(("plain",)).get_content()
    page = mail.get_body(("html",)).get_content()
    assert "success rate" in text and str(written.html) in text
    assert page.replace("\r\n", "\n").rstrip("\n") == written.html.read_text().rstrip("\n")
    attached = {part.get_filename(): part.get_content() for part in mail.iter_attachments()}
    assert attached == {p.name: p.read_bytes() for p in written.charts.values()}
    assert PASSWORD not in mail.as_string()


def test_a_webhook_gets_the_headline_and_a_link_after_retries(flawed_run, hook, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings, _ = flawed_run
    report = build_report(settings.warehouse, "week")
    written = write_report(report, tmp_path)
    channels = Channels(webhook_url=hook.url, retries=3, retry_delay_s=0.01)
    link = "https://reports.example.org/weekly/x.html"
    (delivery,) = deliver(report_message(report, written, link), channels)
    assert delivery.ok and delivery.attempts == 3  # two 500s, then accepted
    (post,) = hook.posts
    assert post["text"].startswith(f"*{report.title}*")
    assert f"<{link}|Full report>" in post["text"]
    assert post["blocks"][0]["type"] == "section"


def test_markup_in_a_webhook_message_is_escaped(hook: Hook) -> None:
    hook.failures_left = 0
    message = Message(subject="s", text="agent <!channel> & <http://x|y>", link="/r.html")
    (delivery,) = deliver(message, Channels(webhook_url=hook.url, retries=0))
    assert delivery.ok
    assert "agent &lt;!channel&gt; &amp; &lt;http://x|y&gt;\n/r.html" in hook.posts[0]["text"]


def test_a_failed_delivery_is_reported_not_raised() -> None:
    channels = Channels(
        webhook_url=_dead_url(), smtp_host="127.0.0.1", smtp_port=1, mail_to=("a@b.c",),
        retries=2, retry_delay_s=0.01,
    )  # fmt: skip
    deliveries = deliver(Message(subject="s", text="t"), channels)
    assert [(d.channel, d.ok, d.attempts) for d in deliveries] == [
        ("email", False, 3),
        ("webhook", False, 3),
    ]
    assert all("refused" in (d.error or "").lower() for d in deliveries)


# ---------------------------------------------------------------------------------------------
# Alerts after a run


@pytest.fixture
def own_warehouse(flawed_run, tmp_path: Path) -> Settings:  # type: ignore[no-untyped-def]
    """A copy of the flawed run's warehouse and state, for tests that write notifications."""
    settings, _ = flawed_run
    target = tmp_path / "warehouse.duckdb"
    shutil.copyfile(settings.warehouse, target)
    shutil.copyfile(state_path_for(settings.warehouse), state_path_for(target))
    return Settings.resolve(db_url=settings.db_url, logs_dir=settings.logs_dir, warehouse=target)


def _notified(settings: Settings) -> dict[bool, int]:
    con = duckdb.connect(str(state_path_for(settings.warehouse)), read_only=True)
    try:
        rows = con.execute(
            "SELECT was_sent, count(*) FROM ops.alerts_notified GROUP BY ALL"
        ).fetchall()
    finally:
        con.close()
    return dict(rows)


def test_new_alerts_go_out_once_grouped(own_warehouse: Settings, hook: Hook) -> None:
    hook.failures_left = 0
    con = duckdb.connect(str(own_warehouse.warehouse), read_only=True)
    alerts = con.execute("SELECT count(*) FROM marts.alerts").fetchone()[0]
    as_of = con.execute("SELECT max(as_of) FROM marts.agent_health").fetchone()[0]
    recent = con.execute(
        "SELECT count(*) FROM marts.alerts WHERE period_start >= ?::DATE - 2", [as_of]
    ).fetchone()[0]
    unhealthy = con.execute(
        "SELECT count(*) FROM marts.agent_health WHERE NOT is_healthy"
    ).fetchone()[0]
    con.close()
    assert recent > 0 and alerts > recent and unhealthy > 0
    channels = Channels(webhook_url=hook.url, retries=0)
    (first,) = notify_alerts(own_warehouse, channels)
    assert first.ok
    (post,) = hook.posts
    assert f"{recent} new alerts, {unhealthy} agent" in post["text"]
    assert post["text"].count("\ncritical: ") + post["text"].count("\nwarning: ") == recent
    # Sent ones are remembered; older ones passed over, unsent.
    assert _notified(own_warehouse) == {True: recent, False: alerts - recent}
    assert notify_alerts(own_warehouse, channels) == []  # nothing new: nothing sent
    assert len(hook.posts) == 1


def test_alerts_stay_pending_when_every_channel_fails(own_warehouse: Settings, hook: Hook) -> None:
    hook.failures_left = 0
    (failed,) = notify_alerts(own_warehouse, Channels(webhook_url=_dead_url(), retries=0))
    assert not failed.ok
    assert _notified(own_warehouse) == {}
    (sent,) = notify_alerts(own_warehouse, Channels(webhook_url=hook.url, retries=0))
    assert sent.ok and len(hook.posts) == 1


def test_a_failed_run_notifies_its_reason(tmp_path: Path, hook: Hook) -> None:
    hook.failures_left = 0
    settings = Settings.resolve(
        db_url="sqlite:///" + str(tmp_path / "missing.db"),
        logs_dir=tmp_path,
        warehouse=tmp_path / "w.duckdb",
    )
    settings = Settings(**{**vars(settings), "extract_retries": 0})
    with pytest.raises(PipelineError) as raised:
        run_and_notify(settings, Channels(webhook_url=hook.url, retries=0))
    (post,) = hook.posts
    assert "agentkpi run failed" in post["text"] and str(raised.value) in post["text"]


def test_a_run_failing_unexpectedly_notifies_its_reason_in_one_line(
    tmp_path: Path, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device\n(and more)")

    monkeypatch.setattr("flows.alerts.run_pipeline", disk_full)
    hook.failures_left = 0
    settings = Settings.resolve(warehouse=tmp_path / "w.duckdb")
    with pytest.raises(OSError):
        run_and_notify(settings, Channels(webhook_url=hook.url, retries=0))
    (post,) = hook.posts
    assert "The pipeline run failed: OSError: [Errno 28] No space left on device" in post["text"]
    assert "(and more)" not in post["text"]
