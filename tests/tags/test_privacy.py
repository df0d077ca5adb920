"""A customer's tags under the privacy app: in the data archive, gone after an erasure."""

from privacy.archive import archive_sections
from privacy.services import customers_erase
from tags.models import CustomerTag, Tag
from tags.services import customer_set_tags
from tests.factories import CustomerFactory, UserFactory


def test_tags_are_in_the_archive_and_removed_by_an_erasure(db):
    staff = UserFactory(role="Staff")
    customer, other = CustomerFactory(), CustomerFactory()
    customer_set_tags(customer=customer, actor=staff, names=["VIP", "Wholesale"])
    customer_set_tags(customer=other, actor=staff, names=["VIP"])
    assert archive_sections(customer)["tags"] == [{"name": "VIP"}, {"name": "Wholesale"}]
    customers_erase(customers=type(customer).objects.filter(pk=customer.pk))
    assert not CustomerTag.objects.filter(customer=customer).exists()
    # The library and the other customers' tags stay.
    assert CustomerTag.objects.filter(customer=other).count() == 1
    assert Tag.objects.count() == 2
