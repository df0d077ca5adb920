from django.core.management.base import BaseCommand
from django.db import transaction

from clients.models import Customer
from orders.selectors import CustomerStats, customer_stats_for


class Command(BaseCommand):
    help = (
        "Recompute every customer's stored statistics (orders, total spent, first/last order, "
        "last source) from the orders, fix those that drifted, and report how many did."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only report drift; change nothing."
        )
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *, check, batch_size, verbosity, **options):
        fields = CustomerStats.FIELDS
        total = Customer.objects.count()
        drifted = seen = 0
        last_pk = 0
        while True:
            with transaction.atomic():
                # Locking the batch keeps order services from changing it while we compare.
                batch = list(
                    Customer.objects.select_for_update()
                    .filter(pk__gt=last_pk)
                    .order_by("pk")
                    .only("pk", *fields)[:batch_size]
                )
                if not batch:
                    break
                last_pk = batch[-1].pk
                truth = customer_stats_for([c.pk for c in batch])
                wrong = []
                for customer in batch:
                    stats = truth[customer.pk]
                    if any(getattr(customer, f) != getattr(stats, f) for f in fields):
                        if verbosity >= 2:
                            self.stdout.write(f"customer {customer.pk} drifted")
                        for f in fields:
                            setattr(customer, f, getattr(stats, f))
                        wrong.append(customer)
                if wrong and not check:
                    Customer.objects.bulk_update(wrong, fields, batch_size=1000)
            drifted += len(wrong)
            seen += len(batch)
            if verbosity >= 1 and total > batch_size:
                self.stderr.write(f"\r{seen:,}/{total:,} customers checked", ending="")
        if verbosity >= 1 and total > batch_size:
            self.stderr.write("")
        verb = "had drifted" if check else "had drifted and were fixed"
        self.stdout.write(f"{seen} customers checked, {drifted} {verb}.")
        if check and drifted:
            raise SystemExit(1)
