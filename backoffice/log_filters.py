"""Filters for the console log (settings.LOGGING)."""

import logging


class RefusedRequestsOnOneLine(logging.Filter):
    """A request Django refused as suspicious (a Host header not in ALLOWED_HOSTS, a hostile
    file name: the `django.security.*` loggers) is logged on one line, without its traceback.

    Why: it is a 400 for the client, not a failure of ours, and the traceback says nothing the
    line does not; a server under a scan had its log filled with them. The line stays (a
    misconfigured ALLOWED_HOSTS must still show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.exc_info:
            record.exc_info = None
            record.exc_text = None
        return True
