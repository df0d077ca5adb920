"""Reads for the privacy pages and the client page's privacy card."""

from privacy.models import AccessLogEntry, Channel, ConsentRecord, ErasureRequest

CONSENT_HISTORY_ROWS = 20


def client_privacy(*, customer, user) -> dict:
    """The client page's privacy card: the planned erasure, consents (state and history) and
    what the user may do, in two queries; none for what the customer's `consent_rows` and
    `erasure_pending` (clients.selectors.customer_detail()) say it does not have."""
    history = []
    if getattr(customer, "consent_rows", None) != 0:
        history = list(
            ConsentRecord.objects.filter(customer_id=customer.pk)
            .select_related("recorded_by")
            .order_by("-at", "-id")[: CONSENT_HISTORY_ROWS + 1]
        )
    erasure = None
    if getattr(customer, "erasure_pending", None) is not False:
        erasure = (
            ErasureRequest.objects.filter(customer_id=customer.pk, cancelled_at=None, done_at=None)
            .select_related("requested_by")
            .first()
        )
    return {
        "erasure": erasure,
        "consents": [
            (Channel.PUSH.label, customer.push_opt_in),
            (Channel.EMAIL.label, customer.email_consent),
            (Channel.SMS.label, customer.sms_consent),
        ],
        "consent_history": history[:CONSENT_HISTORY_ROWS],
        "consent_history_more": len(history) > CONSENT_HISTORY_ROWS,
        "can_manage": user.has_perm("privacy.manage_privacy"),
        "can_record_consent": user.has_perm("privacy.add_consentrecord")
        and customer.erased_at is None,
    }


def access_log_entries():
    """The access log, newest first (the id breaks ties, so pages are stable)."""
    return AccessLogEntry.objects.order_by("-at", "-id")


def planned_erasures():
    """The erasures waiting for the end of their grace period, the soonest first."""
    return (
        ErasureRequest.objects.filter(cancelled_at=None, done_at=None)
        .select_related("customer", "requested_by")
        .order_by("due_at", "id")
    )
