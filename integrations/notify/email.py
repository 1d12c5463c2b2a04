"""Email over SMTP with the standard library (`smtplib` in a worker thread, so the event loop never waits).

One connection per message: customer notifications are a handful per job, and a fresh connection
never trips over a server that dropped an idle one. STARTTLS when configured (port 587), then login
when a user is set. The returned provider id is the Message-ID we put on the message.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from integrations.notify.base import PermanentSendError, RetryableSendError


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 587
    sender: str = "atelier@localhost"
    starttls: bool = True
    user: str | None = None
    password: str | None = None
    timeout: float = 15.0


class EmailChannel:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send(self, to: str, subject: str, body: str, *, idempotency_key: str | None = None) -> str:
        if "@" not in to or any(c in to for c in "\r\n"):
            raise PermanentSendError(f"not an email address: {to!r}")
        message = EmailMessage()
        message["From"] = self._settings.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        domain = self._settings.sender.rpartition("@")[2].strip("> ") or "localhost"
        message_id = make_msgid(idstring=idempotency_key.replace(":", ".") if idempotency_key else None, domain=domain)
        message["Message-ID"] = message_id
        message.set_content(body)
        await asyncio.to_thread(self._deliver, message)
        return message_id

    def _deliver(self, message: EmailMessage) -> None:
        s = self._settings
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.user:
                    smtp.login(s.user, s.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _by_code(min(codes) if codes else 550, f"recipient refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, auth failed...
            raise _by_code(exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # connection refused or lost, timeout, TLS
            raise RetryableSendError(f"SMTP unreachable: {exc!r}") from exc
        if refused:  # one recipient per message, so a partial refusal is a refusal
            raise PermanentSendError(f"recipient refused: {refused}")


def _by_code(code: int, text: str) -> PermanentSendError | RetryableSendError:
    """5xx is permanent, 4xx (and anything odd) is worth another try."""
    return PermanentSendError(text) if 500 <= code < 600 else RetryableSendError(text)
