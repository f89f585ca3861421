"""Delivery of summaries and alerts: e-mail over SMTP and a Slack-compatible webhook.

Channels come from the settings' `[delivery]` section (docs/configuration.md: each from its
environment variable or the configuration file); the secrets, `AGENTKPI_SMTP_PASSWORD` and
`AGENTKPI_WEBHOOK_URL` (its URL holds a token), only from the environment. None of them is
ever logged or written.

A delivery that fails is retried with backoff, then reported (logged, and returned as a
failed `Delivery`); it never raises, so it never fails the pipeline run that triggered it.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from flows.settings import Settings

log = logging.getLogger("agentkpi.deliver")


@dataclass(frozen=True)
class Channels:
    """Where messages go (see the module's table)."""

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_ca_file: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    mail_from: str = "agentkpi@localhost"
    mail_to: tuple[str, ...] = ()
    webhook_url: str | None = field(default=None, repr=False)
    reports_url: str | None = None
    retries: int = 3
    retry_delay_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> Channels:
        """The channels the settings configure (`[delivery]`, docs/configuration.md); the
        secrets, the SMTP password and the webhook URL, from the environment only."""
        env = os.environ if env is None else env
        d = settings.delivery
        recipients = tuple(a.strip() for a in (d.get("mail_to") or "").split(",") if a.strip())
        return cls(
            smtp_host=d.get("smtp_host"),
            smtp_port=d.get("smtp_port", 587),
            smtp_starttls=d.get("smtp_starttls", True),
            smtp_ca_file=d.get("smtp_ca_file"),
            smtp_user=d.get("smtp_user"),
            smtp_password=env.get("AGENTKPI_SMTP_PASSWORD") or None,
            mail_from=d.get("mail_from") or "agentkpi@localhost",
            mail_to=recipients,
            webhook_url=env.get("AGENTKPI_WEBHOOK_URL") or None,
            reports_url=d.get("reports_url"),
            retries=d.get("delivery_retries", 3),
            retry_delay_s=d.get("delivery_retry_delay_s", 2.0),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Channels:
        """The channels of the settings that the environment (and configuration file) give."""
        env = os.environ if env is None else env
        return cls.from_settings(Settings.resolve(env=env), env)

    @property
    def has_email(self) -> bool:
        return bool(self.smtp_host and self.mail_to)

    @property
    def any(self) -> bool:
        return self.has_email or bool(self.webhook_url)


@dataclass(frozen=True)
class Message:
    """One message for every channel: a subject, a plain-text body, an optional HTML body
    with PNG attachments, and a link (or path) to the full report."""

    subject: str
    text: str
    html: str | None = None
    attachments: Mapping[str, bytes] = field(default_factory=dict)  # file name -> PNG
    link: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What became of a message on one channel."""

    channel: str  # "email" or "webhook"
    ok: bool
    attempts: int
    error: str | None = None


def deliver(message: Message, channels: Channels) -> list[Delivery]:
    """Send `message` through every configured channel, each retried; never raises."""
    results = []
    if channels.has_email:
        results.append(_with_retries("email", lambda: send_email(message, channels), channels))
    if channels.webhook_url:
        url = channels.webhook_url
        results.append(_with_retries("webhook", lambda: post_webhook(message, url), channels))
    return results


def _with_retries(channel: str, send: Callable[[], None], channels: Channels) -> Delivery:
    attempts = 0
    while True:
        attempts += 1
        try:
            send()
            return Delivery(channel, True, attempts)
        except Exception as error:  # any failure of a channel is reported, never raised
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            if attempts > channels.retries:
                log.warning(
                    "delivery by %s failed after %d attempts: %s", channel, attempts, reason
                )
                return Delivery(channel, False, attempts, reason)
            delay = channels.retry_delay_s * 4 ** (attempts - 1)
            log.info("delivery by %s failed (%s); retrying in %.1f s", channel, reason, delay)
            time.sleep(delay)


def send_email(message: Message, channels: Channels) -> None:
    """The HTML body with a plain-text alternative and the PNGs attached."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = channels.mail_from
    mail["To"] = ", ".join(channels.mail_to)
    text = message.text + (f"\n\nFull report: {message.link}\n" if message.link else "")
    mail.set_content(text)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    for name, png in message.attachments.items():
        mail.add_attachment(png, maintype="image", subtype="png", filename=name)
    with smtplib.SMTP(channels.smtp_host or "", channels.smtp_port, timeout=30) as smtp:
        if channels.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context(cafile=channels.smtp_ca_file))
        if channels.smtp_user:
            smtp.login(channels.smtp_user, channels.smtp_password or "")
        smtp.send_message(mail)


def post_webhook(message: Message, url: str) -> None:
    """A Slack-compatible JSON message: `text` (the headline and the link), with the same in
    one section block. Slack reads &, < and > as markup: they are escaped as it asks."""
    text = f"*{_slack(message.subject)}*\n{_slack(message.text)}"
    if message.link:
        text += f"\n<{message.link}|Full report>" if "://" in message.link else f"\n{message.link}"
    body = {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status >= 300:
            raise RuntimeError(f"webhook answered {response.status}")


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def report_link(channels: Channels, reports_dir: Path, page: Path) -> str:
    """The address of a written report: under AGENTKPI_REPORTS_URL, else its path."""
    if channels.reports_url:
        relative = page.resolve().relative_to(reports_dir.resolve()).as_posix()
        return channels.reports_url.rstrip("/") + "/" + relative
    return str(page.resolve())
