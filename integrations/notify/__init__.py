"""Customer notification channels: email over SMTP, SMS through an HTTP gateway."""

from integrations.notify.base import Channel, PermanentSendError, RetryableSendError, SendError

__all__ = ["Channel", "PermanentSendError", "RetryableSendError", "SendError"]
