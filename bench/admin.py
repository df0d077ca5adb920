"""The naive customer list `bench_lists` measures against, in the Django admin (superusers).

CustomerNaiveAdmin is the customer list a Django developer would build first: a changelist that
aggregates every customer's orders per request (Count/Sum/Max), sorted by total spent. It is
the reference `manage.py bench_lists` compares the Clients tab with; at a million customers it
takes many seconds per page, which is why the tabs read stored statistics instead.
"""

from django.contrib import admin
from django.db.models import Count, DecimalField, F, Max, Q, Sum, Value
from django.db.models.functions import Coalesce

from bench.models import CustomerNaive
from orders.models import FINALIZED_STATUSES

_FINALIZED = Q(orders__status__in=FINALIZED_STATUSES)


@admin.register(CustomerNaive)
class CustomerNaiveAdmin(admin.ModelAdmin):
    list_display = ("id", "email", "first_name", "last_name", "naive_orders", "naive_spent")
    list_display_links = ("id", "email")
    list_per_page = 25
    show_full_result_count = True

    def get_queryset(self, request):
        return (
            self.model._default_manager.get_queryset()
            .annotate(
                naive_orders=Count("orders", filter=_FINALIZED),
                naive_spent=Coalesce(
                    Sum(F("orders__total") - F("orders__refunded_amount"), filter=_FINALIZED),
                    Value(0),
                    output_field=DecimalField(max_digits=14, decimal_places=2),
                ),
                naive_last_order=Max("orders__placed_at", filter=_FINALIZED),
            )
            .order_by(*self.get_ordering(request))
        )

    def get_ordering(self, request):
        return ("-naive_spent", "-id")  # biggest spenders first, as the Clients tab can sort

    @admin.display(description="orders", ordering="naive_orders")
    def naive_orders(self, obj):
        return obj.naive_orders

    @admin.display(description="total spent", ordering="naive_spent")
    def naive_spent(self, obj):
        return obj.naive_spent

    # A reference to read, never a way to change customers (the services do that).
    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
