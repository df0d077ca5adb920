from django.core.management.base import BaseCommand
from django.db.models import Q
from django.utils import timezone

from notifications.delivery import deliveries_expire_stale
from notifications.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from notifications.services import campaign_finish_if_done
from notifications.tasks import send_batch, start_campaign


class Command(BaseCommand):
    help = (
        "Re-enqueue the unfinished work of push campaigns after a worker stopped: batches "
        "with rows left to send, and due scheduled campaigns. Safe to run at any time (at "
        "worker start, from cron); rows a dead worker left mid-request are marked unknown "
        "once their lease has passed, never sent twice."
    )

    def handle(self, **options):
        now = timezone.now()
        started = 0
        # A scheduled campaign whose start task was lost (its worker died on it).
        for campaign_id in Campaign.objects.filter(
            status=CampaignStatus.SCHEDULED, send_at__lte=now
        ).values_list("pk", flat=True):
            start_campaign.enqueue(campaign_id)
            started += 1
        batches = 0
        for campaign_id in Campaign.objects.filter(status=CampaignStatus.SENDING).values_list(
            "pk", flat=True
        ):
            deliveries_expire_stale(campaign_id=campaign_id)
            open_batches = (
                Delivery.objects.filter(campaign_id=campaign_id)
                .filter(
                    Q(status=DeliveryStatus.PENDING)
                    | Q(status=DeliveryStatus.SENDING, claimed_until__lt=now)
                )
                .values_list("batch", flat=True)
                .distinct()
                .order_by("batch")
            )
            for batch in open_batches:
                send_batch.enqueue(campaign_id, batch)
                batches += 1
            campaign_finish_if_done(campaign_id=campaign_id)
        self.stdout.write(f"{started} campaign(s) started, {batches} batch(es) re-enqueued.")
