from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.models import Customer
from clients.services import address_create
from orders.models import Order, OrderStatus
from orders.services import (
    Attribution,
    ImportedOrder,
    LineInput,
    OrderConflict,
    OrderInvalid,
    attribution_finder_register,
    order_cancel,
    order_draft,
    order_fulfil,
    order_import_check,
    order_pay,
    order_place,
    order_refund,
    order_set_status,
    orders_import,
)
from tests.factories import AddressFactory, CustomerFactory, make_order

pytestmark = pytest.mark.django_db


def test_statistics_count_only_finalized_orders_net_of_refunds():
    customer = CustomerFactory()
    start = timezone.now() - timedelta(days=30)
    make_order(customer, total="100.00", placed_at=start, source="google", medium="cpc")
    make_order(
        customer,
        status=OrderStatus.FULFILLED,
        total="40.00",
        refunded="15.00",
        placed_at=start + timedelta(days=10),
        source="newsletter",
        medium="email",
    )
    make_order(
        customer, status=OrderStatus.REFUNDED, total="30.00", placed_at=start + timedelta(days=5)
    )
    make_order(
        customer, status=OrderStatus.PENDING, total="999.00", placed_at=start + timedelta(days=20)
    )
    last = make_order(
        customer, status=OrderStatus.CANCELLED, total="999.00", placed_at=start + timedelta(days=25)
    )
    customer.refresh_from_db()
    assert customer.orders_count == 3
    assert customer.total_spent == Decimal("125.00")  # 100 + (40 - 15) + (30 - 30)
    assert customer.first_order_at == start
    assert customer.last_order_at == start + timedelta(days=10)
    assert (customer.last_source, customer.last_medium) == ("newsletter", "email")
    assert customer.last_order_id != last.pk


def test_a_lead_becomes_a_client_when_an_order_is_paid():
    customer = CustomerFactory()
    order = make_order(customer, status=OrderStatus.PENDING, total="20.00")
    customer.refresh_from_db()
    assert customer.orders_count == 0 and not customer.is_client
    order_set_status(order=order, status=OrderStatus.PAID)
    customer.refresh_from_db()
    assert customer.orders_count == 1 and customer.total_spent == Decimal("20.00")
    assert customer.last_order_id == order.pk


def test_orders_freeze_the_default_addresses():
    address = AddressFactory(city="Lyon")
    customer = address.customer
    customer.default_billing_address = address
    customer.default_shipping_address = address
    customer.save()
    order = make_order(customer)
    address.city = "Paris"
    address.save()
    order.refresh_from_db()
    assert order.billing_address["city"] == "Lyon"
    assert order.shipping_address["city"] == "Lyon"


@pytest.mark.parametrize(
    ("status", "target"),
    [
        (OrderStatus.CANCELLED, OrderStatus.PAID),
        (OrderStatus.PENDING, OrderStatus.FULFILLED),
        (OrderStatus.REFUNDED, OrderStatus.PAID),
    ],
)
def test_impossible_status_changes_are_refused(status, target):
    order = make_order(CustomerFactory(), status=status)
    with pytest.raises(ValidationError):
        order_set_status(order=order, status=target)


def test_refunds_cannot_exceed_the_total_or_touch_pending_orders():
    customer = CustomerFactory()
    paid = make_order(customer, total="10.00")
    with pytest.raises(ValidationError):
        order_refund(order=paid, amount=Decimal("10.01"))
    with pytest.raises(ValidationError):
        order_refund(order=paid, amount=Decimal("0"))
    pending = make_order(customer, status=OrderStatus.PENDING)
    with pytest.raises(ValidationError):
        order_refund(order=pending, amount=Decimal("1"))
    customer.refresh_from_db()
    assert customer.total_spent == Decimal("10.00")


def test_rebuild_customer_stats_reports_and_fixes_drift(capsys):
    good, bad = CustomerFactory(), CustomerFactory()
    make_order(good, total="12.50")
    make_order(bad, total="7.25")
    Customer.objects.filter(pk=bad.pk).update(total_spent=Decimal("1.00"), orders_count=9)

    with pytest.raises(SystemExit):
        call_command("rebuild_customer_stats", "--check")
    assert "1 had drifted" in capsys.readouterr().out
    bad.refresh_from_db()
    assert bad.orders_count == 9  # --check changes nothing

    call_command("rebuild_customer_stats")
    assert "2 customers checked, 1 had drifted and were fixed" in capsys.readouterr().out
    bad.refresh_from_db()
    assert (bad.orders_count, bad.total_spent) == (1, Decimal("7.25"))
    call_command("rebuild_customer_stats", "--check")
    assert "0 had drifted" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("start", "target"),
    [(OrderStatus.PAID, OrderStatus.FULFILLED), (OrderStatus.PENDING, OrderStatus.CANCELLED)],
)
def test_a_change_that_keeps_the_statistics_does_not_rewrite_the_customer(start, target):
    customer = CustomerFactory()
    make_order(customer, total="12.00")
    order = make_order(customer, status=start, total="8.00")
    table = Customer._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        order_set_status(order=order, status=target)
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and table in q["sql"]]
    assert updates == []
    customer.refresh_from_db()
    expected = (2, Decimal("20.00")) if start == OrderStatus.PAID else (1, Decimal("12.00"))
    assert (customer.orders_count, customer.total_spent) == expected


def test_a_change_of_the_statistics_rewrites_only_what_changed():
    customer = CustomerFactory()
    order = make_order(customer, status=OrderStatus.PENDING, total="8.00")
    with CaptureQueriesContext(connection) as queries:
        order_set_status(order=order, status=OrderStatus.PAID)
    table = Customer._meta.db_table
    updates = [
        q["sql"] for q in queries if q["sql"].lstrip().startswith("UPDATE") and table in q["sql"]
    ]
    assert len(updates) == 1 and '"email"' not in updates[0]
    customer.refresh_from_db()
    assert (customer.orders_count, customer.total_spent) == (1, Decimal("8.00"))


# --- The order services the storefront API calls -----------------------------------------


def _lines(*prices):
    return [
        LineInput(product_name=f"P{i}", sku=f"S{i}", quantity=2, unit_price=Decimal(p))
        for i, p in enumerate(prices)
    ]


def _customer_writes(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if q["sql"].strip().replace('"', "").startswith("UPDATE clients_customer ")
    ]


def test_place_computes_amounts_and_checks_the_given_total():
    customer = CustomerFactory()
    order = order_place(
        customer=customer,
        number="A-1",
        lines=_lines("10.00", "2.50"),
        shipping=Decimal("4.90"),
        tax=Decimal("1.00"),
        discount=Decimal("3.00"),
        total=Decimal("27.90"),
    )
    assert (order.subtotal, order.total, order.status) == (
        Decimal("25.00"),
        Decimal("27.90"),
        OrderStatus.PENDING,
    )
    assert order.lines.count() == 2
    with pytest.raises(OrderInvalid) as error:
        order_place(customer=customer, number="A-2", lines=_lines("10.00"), total=Decimal("21"))
    assert (error.value.code, error.value.field, error.value.conflict) == (
        "total-mismatch",
        "total",
        False,
    )


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"lines": []}, "no-lines", "lines"),
        ({"currency": "USD"}, "currency-mismatch", "currency"),
        ({"shipping": Decimal("-1")}, "invalid-amount", "shipping"),
        ({"tax": Decimal("0.001")}, "invalid-amount", "tax"),
        ({"discount": Decimal("1000")}, "invalid-amount", "discount"),
        ({"lines": _lines("1e12")}, "invalid-amount", "lines[0].unit_price"),
        ({"lines": _lines("NaN")}, "invalid-amount", "lines[0].unit_price"),
        (
            {"lines": [LineInput(product_name="x", sku="", quantity=0, unit_price=Decimal(1))]},
            "invalid-quantity",
            "lines[0].quantity",
        ),
        (
            {"lines": [LineInput(product_name=" ", sku="", quantity=1, unit_price=Decimal(1))]},
            "required",
            "lines[0].product_name",
        ),
        ({"number": ""}, "required", "number"),
        ({"number": "x" * 33}, "too-long", "number"),
        ({"source": "\x00"}, "invalid-text", "source"),
        ({"placed_at": datetime(2100, 1, 1, tzinfo=UTC)}, "invalid-datetime", "placed_at"),
    ],
)
def test_place_refuses_invalid_orders_with_a_typed_error_and_writes_nothing(kwargs, code, field):
    customer = CustomerFactory()
    arguments = {"customer": customer, "number": "B-1", "lines": _lines("10.00"), **kwargs}
    with pytest.raises(OrderInvalid) as error:
        order_place(**arguments)
    assert (error.value.code, error.value.field) == (code, field)
    assert not customer.orders.exists()


def test_an_order_number_is_used_once():
    customer = CustomerFactory()
    order_place(customer=customer, number="C-1", lines=_lines("10.00"))
    with pytest.raises(OrderConflict) as error:
        order_place(customer=CustomerFactory(), number="C-1", lines=_lines("5.00"))
    assert (error.value.code, error.value.field) == ("order-number-taken", "number")
    assert customer.orders.count() == 1


@pytest.mark.parametrize(
    ("status", "change"),
    [
        (OrderStatus.CANCELLED, order_pay),
        (OrderStatus.CANCELLED, order_fulfil),
        (OrderStatus.CANCELLED, order_cancel),
        (OrderStatus.PENDING, order_fulfil),
        (OrderStatus.PAID, order_pay),
        (OrderStatus.PAID, order_cancel),
        (OrderStatus.FULFILLED, order_pay),
        (OrderStatus.FULFILLED, order_fulfil),
        (OrderStatus.FULFILLED, order_cancel),
        (OrderStatus.REFUNDED, order_pay),
        (OrderStatus.REFUNDED, order_fulfil),
        (OrderStatus.REFUNDED, order_cancel),
    ],
)
def test_every_invalid_transition_is_a_conflict_and_changes_nothing(status, change):
    customer = CustomerFactory()
    order = make_order(customer, status=status, total="30.00")
    customer.refresh_from_db()
    before = {f: getattr(customer, f) for f in ("orders_count", "total_spent", "last_order_id")}
    with pytest.raises(OrderConflict) as error:
        change(order=order)
    assert error.value.code == "invalid-transition"
    order.refresh_from_db()
    customer.refresh_from_db()
    assert order.status == status
    assert {f: getattr(customer, f) for f in before} == before


def test_several_partial_refunds_add_up_and_the_last_one_marks_the_order_refunded():
    customer = CustomerFactory()
    order = make_order(customer, status=OrderStatus.FULFILLED, total="100.00")
    order = order_refund(order=order, amount=Decimal("30.00"))
    order = order_refund(order=order, amount="20.50")
    assert (order.status, order.refunded_amount) == (OrderStatus.FULFILLED, Decimal("50.50"))
    with pytest.raises(OrderConflict) as error:
        order_refund(order=order, amount=Decimal("49.51"))
    assert (error.value.code, error.value.field) == ("refund-exceeds-paid", "amount")
    with pytest.raises(OrderInvalid):
        order_refund(order=order, amount=Decimal("-1"))
    order = order_refund(order=order, amount=Decimal("49.50"))
    assert order.status == OrderStatus.REFUNDED
    with pytest.raises(OrderConflict):
        order_refund(order=order, amount=Decimal("0.01"))
    customer.refresh_from_db()
    assert (customer.orders_count, customer.total_spent) == (1, Decimal("0.00"))
    call_command("rebuild_customer_stats", "--check")


def test_changes_that_cannot_move_the_statistics_do_not_write_the_customer():
    customer = CustomerFactory()
    with CaptureQueriesContext(connection) as placing:
        pending = order_place(customer=customer, number="D-1", lines=_lines("10.00"))
        other = order_place(customer=customer, number="D-2", lines=_lines("10.00"))
    with CaptureQueriesContext(connection) as cancelling:
        order_cancel(order=other)
    with CaptureQueriesContext(connection) as paying:
        paid = order_pay(order=pending)
    with CaptureQueriesContext(connection) as fulfilling:
        order_fulfil(order=paid)
    assert _customer_writes(placing) == _customer_writes(cancelling) == []
    assert _customer_writes(fulfilling) == []
    assert len(_customer_writes(paying)) == 1


def test_an_older_order_paid_late_does_not_become_the_last_order():
    customer = CustomerFactory()
    now = timezone.now()
    old = order_place(
        customer=customer,
        number="E-1",
        lines=_lines("5"),
        placed_at=now - timedelta(days=9),
        source="old",
    )
    new = order_place(
        customer=customer, number="E-2", lines=_lines("7"), placed_at=now, source="new"
    )
    order_pay(order=new)
    order_pay(order=old)
    customer.refresh_from_db()
    assert (customer.last_order_id, customer.last_source) == (new.pk, "new")
    assert customer.first_order_at == old.placed_at
    call_command("rebuild_customer_stats", "--check")


def test_an_order_without_a_source_is_attributed_by_the_registered_finder():
    customer = CustomerFactory()
    seen = []

    def finder(orders):
        seen.extend(customer_id for customer_id, _ in orders)
        return [Attribution(source="google", medium="cpc", campaign="spring") for _ in orders]

    attribution_finder_register(finder)
    try:
        order = order_place(customer=customer, number="F-1", lines=_lines("5"))
        given = order_place(customer=customer, number="F-2", lines=_lines("5"), source="")
    finally:
        from orders import services

        services._attribution_finders.remove(finder)
    assert (order.source, order.medium, order.campaign) == ("google", "cpc", "spring")
    assert (given.source, given.medium) == ("", "")
    assert seen == [customer.pk]


def _imported(customer, number, status=OrderStatus.PENDING, refunded=None, price="10.00", **kw):
    draft = order_draft(
        number=number,
        lines=_lines(price),
        placed_at=kw.pop("placed_at", datetime(2026, 1, 5, 12, tzinfo=UTC)),
        source=kw.pop("source", "google"),
        medium="cpc",
    )
    return order_import_check(
        ImportedOrder(draft=draft, customer_id=customer.pk, status=status, refunded_amount=refunded)
    )


def test_import_creates_moves_forward_or_leaves_orders_and_keeps_statistics_exact():
    alice, bob = CustomerFactory(), CustomerFactory()
    address_create(
        customer=alice, name="A", line1="1 rue", postal_code="69001", city="Lyon", country="FR"
    )
    first = orders_import(
        [
            _imported(alice, "I-1", OrderStatus.PAID),
            _imported(alice, "I-2", OrderStatus.FULFILLED, refunded=Decimal("5.00")),
            _imported(alice, "I-3", OrderStatus.REFUNDED),
            _imported(bob, "I-4"),
            _imported(bob, "I-5", OrderStatus.CANCELLED),
        ]
    )
    assert [r[0] for r in first] == ["created"] * 5
    alice.refresh_from_db()
    # 20 + (20 - 5) + (20 - 20): every line is 2 x 10.00
    assert (alice.orders_count, alice.total_spent) == (3, Decimal("35.00"))
    assert Order.objects.get(number="I-1").lines.count() == 1
    assert Order.objects.get(number="I-1").billing_address["city"] == "Lyon"
    again = orders_import(
        [
            _imported(alice, "I-1", OrderStatus.PAID),
            _imported(alice, "I-2", OrderStatus.REFUNDED),
            _imported(bob, "I-4", OrderStatus.PAID),
            _imported(bob, "I-5", OrderStatus.PAID),
            _imported(alice, "I-3", OrderStatus.REFUNDED, price="11.00"),
        ]
    )
    (other_customer,) = orders_import([_imported(bob, "I-1", OrderStatus.PAID)])
    assert again[0][0] == "unchanged"
    assert again[1][0] == again[2][0] == "updated"
    assert isinstance(again[3], OrderConflict) and again[3].code == "invalid-transition"
    assert isinstance(again[4], OrderConflict) and again[4].code == "order-number-taken"
    assert isinstance(other_customer, OrderConflict)
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert (alice.orders_count, alice.total_spent) == (3, Decimal("20.00"))
    assert (bob.orders_count, bob.total_spent) == (1, Decimal("20.00"))
    call_command("rebuild_customer_stats", "--check")


@pytest.mark.parametrize(
    ("status", "refunded", "field"),
    [
        ("lost", None, "status"),
        (OrderStatus.PAID, Decimal("21.00"), "refunded_amount"),
        (OrderStatus.PENDING, Decimal("1.00"), "refunded_amount"),
        (OrderStatus.REFUNDED, Decimal("1.00"), "refunded_amount"),
        (OrderStatus.PAID, Decimal("20.00"), "status"),
    ],
)
def test_import_refuses_impossible_states(status, refunded, field):
    with pytest.raises(OrderInvalid) as error:
        _imported(CustomerFactory(), "J-1", status, refunded)
    assert error.value.field == field


def test_each_status_change_starts_from_one_status():
    """order_set_status changes an order in one UPDATE from the status the change follows
    (_PREVIOUS): every status a change reaches has exactly one status it may follow."""
    from orders.services import _PREVIOUS, _TRANSITIONS

    reached = [new for news in _TRANSITIONS.values() for new in news]
    assert sorted(reached) == sorted(_PREVIOUS)
    assert all(_PREVIOUS[new] == old for old, news in _TRANSITIONS.items() for new in news)
