from django.core.management.base import BaseCommand
from django.db import connection, transaction

from clients.models import LATEST_ORDER_DATES, Customer
from lifecycle.services import customers_group_refresh
from orders.models import FINALIZED_STATUSES
from orders.selectors import CustomerStats, customer_stats_for, customer_stats_sql
from orders.services import customer_products_rebuild

# PostgreSQL: every customer's stored statistics against the orders, in one statement (so one
# snapshot: the services change orders and statistics in the same transaction). Returns the
# number of customers and the ids of those that differ.
_LATEST_DATES_DRIFT = "".join(
    f"\n    OR c.{column} IS DISTINCT FROM s.at_{k}"
    for k, column in enumerate(LATEST_ORDER_DATES[1:], 2)
)
_DRIFT_SQL = (
    customer_stats_sql()
    + """
SELECT count(*), array_agg(c.id) FILTER (WHERE
       c.orders_count IS DISTINCT FROM coalesce(s.n, 0)
    OR c.total_spent IS DISTINCT FROM coalesce(s.spent, 0)
    OR c.first_order_at IS DISTINCT FROM s.first_at
    OR c.last_order_at IS DISTINCT FROM s.last_at
    OR c.last_order_id IS DISTINCT FROM s.last_id
    OR c.last_source IS DISTINCT FROM coalesce(s.source, '')
    OR c.last_medium IS DISTINCT FROM coalesce(s.medium, ''){latest_dates})
FROM {customers} c
LEFT JOIN stats s ON s.customer_id = c.id
"""
)


class Command(BaseCommand):
    help = (
        "Recompute every customer's stored statistics (orders, total spent, first/last order, "
        "the dates of the nine orders before the last, last source) from the orders, fix "
        "those that drifted, and report how many did."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only report drift; change nothing."
        )
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *, check, batch_size, verbosity, **options):
        if connection.vendor == "postgresql":
            self._handle_set_based(check=check, batch_size=batch_size, verbosity=verbosity)
            return
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
                drifted += self._fix_batch(batch, check=check, verbosity=verbosity)
            seen += len(batch)
            if verbosity >= 1 and total > batch_size:
                self.stderr.write(f"\r{seen:,}/{total:,} customers checked", ending="")
        if verbosity >= 1 and total > batch_size:
            self.stderr.write("")
        self._report(seen=seen, drifted=drifted, check=check)

    def _handle_set_based(self, *, check, batch_size, verbosity):
        """PostgreSQL: find the drifted customers with one set-based query (seconds for a
        million customers instead of minutes of batches), then fix only those, locked and
        recomputed one batch at a time as the services would."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '256MB'")
            sql = _DRIFT_SQL.format(
                customers=connection.ops.quote_name(Customer._meta.db_table),
                latest_dates=_LATEST_DATES_DRIFT,
            )
            cursor.execute(sql, {"statuses": [str(s) for s in FINALIZED_STATUSES]})
            seen, suspects = cursor.fetchone()
        suspects = sorted(suspects or [])
        fields = CustomerStats.FIELDS
        drifted = 0
        for start in range(0, len(suspects), batch_size):
            with transaction.atomic():
                batch = list(
                    Customer.objects.select_for_update()
                    .filter(pk__in=suspects[start : start + batch_size])
                    .order_by("pk")
                    .only("pk", *fields)
                )
                drifted += self._fix_batch(batch, check=check, verbosity=verbosity)
        self._report(seen=seen, drifted=drifted, check=check)

    def _fix_batch(self, batch, *, check, verbosity) -> int:
        """Compare a locked batch with its orders; fix the drifted (unless --check); count them."""
        fields = CustomerStats.FIELDS
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
            # The group follows the statistics (lifecycle.rules), as in the services.
            customers_group_refresh([c.pk for c in wrong])
        return len(wrong)

    def _report(self, *, seen, drifted, check):
        verb = "had drifted" if check else "had drifted and were fixed"
        self.stdout.write(f"{seen} customers checked, {drifted} {verb}.")
        missing = self._products(check=check)
        verb = "were missing" if check else "were missing and were added"
        self.stdout.write(f"{missing} products bought (CustomerProduct) {verb}.")
        if check and (drifted or missing):
            raise SystemExit(1)

    def _products(self, *, check) -> int:
        """The products bought in finalized orders missing from CustomerProduct (the lists'
        "bought a product" filter), added unless --check."""
        with transaction.atomic():
            missing = customer_products_rebuild()
            if check:
                transaction.set_rollback(True)
        return missing
