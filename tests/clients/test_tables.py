"""CustomerTable (clients/tables.py): the columns of the Clients and Leads lists."""

from clients.tables import CustomerTable


def visible(table) -> list[str]:
    return [column.name for column in table.columns]


def test_the_push_selection_is_the_last_column_for_those_who_may_send_push_only():
    # The tables share their columns (no per-table copy): one table leaving the selection
    # out must not hide it from the next, nor the other way round.
    without = CustomerTable([], show_select=False)
    with_select = CustomerTable([], show_select=True)
    assert visible(with_select)[-1] == "select"
    assert "select" not in visible(without)
    assert visible(CustomerTable([], show_select=False)) == visible(without)
    assert visible(CustomerTable([], show_select=True)) == visible(with_select)
    assert not with_select.columns["select"].orderable


def test_a_table_keeps_only_a_sort_by_one_of_its_orderable_columns():
    table = CustomerTable([])
    for sort, kept in [
        ("-total_spent", ("-total_spent",)),
        ("name", ("name",)),
        ("select", ()),
        ("password", ()),
    ]:
        table.order_by = [sort]
        assert tuple(table.order_by) == kept
    table.order_by = ["-name"]
    assert table.columns["name"].order_by_alias.next == "name"
    assert table.columns["id"].order_by_alias.next == "id"
    table.order_by = ["name"]
    assert table.columns["name"].order_by_alias.next == "-name"
