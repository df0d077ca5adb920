"""The benchmark's reference model: no table of its own (a proxy of Customer), so that the
naive admin changelist in bench/admin.py lives outside the product apps."""

from clients.models import Customer


class CustomerNaive(Customer):
    """The customers, seen through the naive (aggregating) admin changelist."""

    class Meta:
        proxy = True
        verbose_name = "customer (aggregated per request: benchmark reference)"
        verbose_name_plural = "customers (aggregated per request: benchmark reference)"
