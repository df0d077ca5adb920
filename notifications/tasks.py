"""Background work of push campaigns (django.tasks; the db_worker command runs it)."""

from django.tasks import task

from notifications import delivery, services


@task(queue_name="default")
def start_campaign(campaign_id: int) -> int:
    """Freeze the audience of a due campaign and enqueue its batches; returns their number."""
    # campaign_start has committed the delivery rows, so the batches can be enqueued now.
    batches = services.campaign_start(campaign_id=campaign_id)
    for batch in batches:
        send_batch.enqueue(campaign_id, batch)
    return len(batches)


@task(queue_name="default")
def send_batch(campaign_id: int, batch: int) -> str:
    """Send one batch of a campaign (see notifications/delivery.py)."""
    return delivery.batch_send(campaign_id=campaign_id, batch=batch)
