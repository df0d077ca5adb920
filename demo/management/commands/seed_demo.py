import argparse
import time
from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from clients.models import Customer
from demo import shop as demo
from lifecycle.selectors import MOVEMENT_DAYS
from lifecycle.services import lifecycle_recompute, snapshot_from_history
from orders.services import customer_products_rebuild


class Command(BaseCommand):
    help = (
        "Fill the database with a believable demo shop: clients and leads (English and French "
        "names and addresses), address books, orders with lines in every status and traffic "
        "source, notes and push subscriptions. Uses COPY on PostgreSQL, bulk inserts elsewhere."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--customers", type=int, default=300, help="How many customers (default 300)."
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=2026,
            help="Random seed: the same seed on the same day gives the same shop.",
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing if there are customers already."
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=10_000,
            help="Customers generated and committed per transaction.",
        )
        parser.add_argument(
            "--bulk",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=(
                "PostgreSQL: load in one transaction, building indexes and checking foreign "
                f"keys once at the end (default: from {demo.BULK_LOAD_CUSTOMERS:,} customers)."
            ),
        )
        parser.add_argument("--database", default="default")

    def handle(
        self, *, customers, seed, if_empty, chunk_size, bulk, database, verbosity, **options
    ):
        if customers < 0 or chunk_size < 1:
            raise CommandError("--customers must be 0 or more and --chunk-size at least 1.")
        if if_empty and Customer.objects.using(database).exists():
            if verbosity:
                self.stdout.write("Customers exist already: no demo data added.")
            return
        started = time.monotonic()
        shop = demo.DemoShop(
            seed=seed,
            customers=customers,
            first_ids=demo.first_free_ids(database),
            today=timezone.now().astimezone(demo.UTC).date(),
            staff_id=self._staff_author(database).pk,
        )
        vendor = connections[database].vendor
        if bulk is None:
            bulk = customers >= demo.BULK_LOAD_CUSTOMERS
        # The customers' lifecycle groups, as the daily recompute would set them: in a bulk
        # load before the indexes are rebuilt (at a million customers the same UPDATE with the
        # customers table's indexes in place took 258 s), else once the rows are in.
        in_load = bulk and vendor == "postgresql" and database == DEFAULT_DB_ALIAS
        writer = demo.writer_for(
            database, bulk=bulk, before_indexes=lifecycle_recompute if in_load else None
        )
        try:
            while shop.done < customers:
                writer.write(shop.chunk(min(chunk_size, customers - shop.done)))
                if verbosity:
                    self._progress(shop, started)
        finally:
            if verbosity and bulk and vendor == "postgresql":
                self.stderr.write("\n  building indexes and checking foreign keys…", ending="")
                self.stderr.flush()
            writer.close()
        demo.reset_sequences(database)
        # What the order services record when an order is finalized: who bought which product.
        customer_products_rebuild()
        if not in_load:
            lifecycle_recompute()
        # The demo shop has years of orders but no daily snapshot yet: the dashboard compares
        # with the day MOVEMENT_DAYS ago as the order history says it was.
        snapshot_from_history(day=timezone.localdate() - timedelta(days=MOVEMENT_DAYS))
        vacuum_started = time.monotonic()
        if customers:
            if verbosity:
                self.stderr.write("\n  vacuuming and analyzing…", ending="")
                self.stderr.flush()
            demo.vacuum_analyze(database)
        vacuum_s = time.monotonic() - vacuum_started
        if verbosity:
            if customers:
                self.stderr.write("")
            how = "COPY" if vendor == "postgresql" else "bulk inserts"
            self.stdout.write(
                f"Demo shop loaded with {how} in {time.monotonic() - started:.1f} s: "
                + ", ".join(
                    f"{count:,} {table.model._meta.verbose_name_plural}"
                    for table, count in shop.counts.items()
                )
                + f" (vacuumed and analyzed in {vacuum_s:.1f} s)."
            )

    def _progress(self, shop, started):
        elapsed = time.monotonic() - started
        percent = shop.done * 100 // shop.total
        orders = shop.counts[demo.ORDER]
        self.stderr.write(
            f"\r  {shop.done:,}/{shop.total:,} customers ({percent}%), {orders:,} orders, "
            f"{elapsed:.0f} s",
            ending="",
        )
        self.stderr.flush()

    def _staff_author(self, database):
        """The staff member who wrote the demo notes (the Staff role's demo account)."""
        user, created = User.objects.using(database).get_or_create(
            username="staff", defaults={"first_name": "Camille", "last_name": "Bernard"}
        )
        if created:
            # create_demo_users gives it a password when the demo logins are printed.
            user.set_unusable_password()
            user.save(update_fields=["password"])
            group = Group.objects.using(database).filter(name="Staff").first()
            if group:
                user.groups.add(group)
        return user
