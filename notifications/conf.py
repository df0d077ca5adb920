"""Tunables of push delivery, with defaults; settings.PUSH_* override them."""

from django.conf import settings

DEFAULTS = {
    # Deliveries per batch task: several workers share a campaign batch by batch.
    "PUSH_BATCH_SIZE": 1000,
    # Deliveries a worker claims at once and writes together. Two waves are on the wire at
    # once, so a wave is at most PUSH_CONCURRENCY / 2: the whole wave is written as soon as it
    # is marked "sending". At most two waves have an unknown outcome if the worker is killed.
    "PUSH_WAVE_SIZE": 100,
    # Open connections per worker process (notifications/http1.py).
    "PUSH_CONCURRENCY": 200,
    # Seconds for one request to a push service, connection included.
    "PUSH_REQUEST_TIMEOUT": 10.0,
    # Attempts per delivery on 5xx, 408 and connections that could not be opened before it is
    # marked failed (429 answers do not count: see PUSH_RETRY_WINDOW). With
    # the delays below, the 9 waits between 10 attempts add up to 302-378 s: a delivery
    # survives a push-service outage of about five minutes.
    "PUSH_MAX_ATTEMPTS": 10,
    # First retry delay in seconds; doubled on each attempt up to PUSH_RETRY_MAX_DELAY, then
    # multiplied by a random 1-1.25 so that retries of one wave spread out.
    "PUSH_RETRY_BASE_DELAY": 2.0,
    # Longest backoff before the jitter: during a long outage each delivery is retried about
    # once a minute, and is sent at most that long (x1.25) after the service is back.
    "PUSH_RETRY_MAX_DELAY": 60.0,
    # Seconds from a campaign's start during which refused deliveries (429 included) are
    # retried; what is still pending then fails. This, not a number of 429s, ends a campaign
    # whose push service keeps asking to slow down.
    "PUSH_RETRY_WINDOW": 4 * 3600.0,
    # A sending campaign's watchdog task runs this often (tasks.watch_campaign): it settles
    # what a killed worker left and re-enqueues the batches nobody works on.
    "PUSH_WATCHDOG_INTERVAL": 30.0,
    # Longest Retry-After honoured; longer answers are capped.
    "PUSH_MAX_RETRY_AFTER": 3600.0,
    # A worker sleeps for retries up to this many seconds; longer waits re-enqueue the batch.
    "PUSH_MAX_INLINE_WAIT": 30.0,
    # How long a claimed or sending wave belongs to its worker; after that the worker is taken
    # for dead: its claimed rows (never written) go back to pending, its "sending" rows (maybe
    # written) get the outcome "unknown".
    "PUSH_CLAIM_LEASE": 120.0,
    # A PEM file of CA certificates trusted for push services besides the system's (a push
    # service behind a private CA, the tests' local HTTPS one); "" for the system's only.
    "PUSH_CA_FILE": "",
    # Encrypt messages (RFC 8291) in a child process of each worker (notifications/
    # encryption.py), on another core and outside the worker's GIL; the worker encrypts them
    # itself whenever the child is unavailable.
    "PUSH_ENCRYPT_IN_CHILD": True,
    # Active subscriptions one customer may have (browsers, devices); subscribing one more
    # replaces the oldest, so one storefront token cannot make a campaign send thousands of
    # requests.
    "PUSH_MAX_SUBSCRIPTIONS_PER_CUSTOMER": 20,
}


def push_setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
