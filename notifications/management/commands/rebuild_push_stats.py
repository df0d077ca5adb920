from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q

from clients.models import Customer
from notifications.models import Campaign, Delivery, DeliveryStatus, PushSubscription


class Command(BaseCommand):
    help = (
        "Recompute the denormalized push fields from their source rows and report drift: "
        "Customer.push_opt_in (from active subscriptions) and each campaign's counters "
        "(from its delivery rows)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only report drift; change nothing (exit 1)."
        )
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *, check, batch_size, verbosity, **options):
        customers = self._customers(check=check, batch_size=batch_size, verbosity=verbosity)
        campaigns = self._campaigns(check=check, verbosity=verbosity)
        verb = "had drifted" if check else "had drifted and were fixed"
        self.stdout.write(
            f"{customers[0]} customers checked, {customers[1]} {verb}; "
            f"{campaigns[0]} campaigns checked, {campaigns[1]} {verb}."
        )
        if check and (customers[1] or campaigns[1]):
            raise SystemExit(1)

    def _customers(self, *, check, batch_size, verbosity):
        active = PushSubscription.objects.filter(customer=OuterRef("pk"), status="active")
        seen = drifted = 0
        last_pk = 0
        while True:
            with transaction.atomic():
                # Locked so subscription services cannot change the batch while it is compared.
                batch = list(
                    Customer.objects.select_for_update()
                    .filter(pk__gt=last_pk)
                    .order_by("pk")
                    .annotate(truth=Exists(active))
                    .only("pk", "push_opt_in")[:batch_size]
                )
                if not batch:
                    break
                last_pk = batch[-1].pk
                wrong = [c for c in batch if c.push_opt_in != c.truth]
                for customer in wrong:
                    if verbosity >= 2:
                        self.stdout.write(f"customer {customer.pk}: push_opt_in drifted")
                    customer.push_opt_in = customer.truth
                if wrong and not check:
                    Customer.objects.bulk_update(wrong, ["push_opt_in"])
            seen += len(batch)
            drifted += len(wrong)
        return seen, drifted

    def _campaigns(self, *, check, verbosity):
        seen = drifted = 0
        counts = {
            "recipients": Count("pk"),
            "delivered": Count("pk", filter=Q(status=DeliveryStatus.SENT)),
            "failed": Count("pk", filter=Q(status=DeliveryStatus.FAILED)),
            "expired": Count("pk", filter=Q(status=DeliveryStatus.EXPIRED)),
            "unknown": Count("pk", filter=Q(status=DeliveryStatus.UNKNOWN)),
            "clicks": Count("pk", filter=Q(clicked_at__isnull=False)),
        }
        for campaign_id in Campaign.objects.order_by("pk").values_list("pk", flat=True):
            with transaction.atomic():
                campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
                if campaign.status in ("scheduled", "cancelled"):
                    continue
                truth = Delivery.objects.filter(campaign_id=campaign_id).aggregate(**counts)
                wrong = [
                    name for name in Campaign.COUNTERS if getattr(campaign, name) != truth[name]
                ]
                seen += 1
                if wrong:
                    drifted += 1
                    if verbosity >= 2:
                        self.stdout.write(f"campaign {campaign_id}: {', '.join(wrong)} drifted")
                    if not check:
                        for name in wrong:
                            setattr(campaign, name, truth[name])
                        campaign.save(update_fields=wrong)
        return seen, drifted
