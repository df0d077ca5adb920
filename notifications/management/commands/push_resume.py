from django.core.management.base import BaseCommand
from django.utils import timezone

from notifications import tasks
from notifications.models import Campaign, CampaignStatus


class Command(BaseCommand):
    help = (
        "Re-enqueue the unfinished work of push campaigns after a worker stopped: batches "
        "nobody works on, due scheduled campaigns, and each campaign's watchdog. The "
        "watchdog does this by itself every PUSH_WATCHDOG_INTERVAL; this command is for "
        "operators. Safe to run at any time: claimed rows a dead worker never wrote go back "
        "to pending, rows it may have written are marked unknown once their lease has "
        "passed, and nothing is sent twice."
    )

    def handle(self, **options):
        now = timezone.now()
        started = 0
        # A scheduled campaign whose start task was lost (its worker died on it).
        for campaign_id in Campaign.objects.filter(
            status=CampaignStatus.SCHEDULED, send_at__lte=now
        ).values_list("pk", flat=True):
            tasks.start_campaign.enqueue(campaign_id)
            started += 1
        batches = 0
        for campaign_id in Campaign.objects.filter(status=CampaignStatus.SENDING).values_list(
            "pk", flat=True
        ):
            batches += tasks.campaign_recover(campaign_id)
            tasks.watchdog_ensure(campaign_id)
        self.stdout.write(f"{started} campaign(s) started, {batches} batch(es) re-enqueued.")
