"""Phone numbers stored before the forms and the API normalized them are rewritten in the one
international format (clients.services.phones_normalize); numbers that are no valid phone
number are left as they are and counted."""

from django.db import migrations


def phones_international(apps, schema_editor):
    from clients.services import phones_normalize

    done = phones_normalize(
        customer_model=apps.get_model("clients", "Customer"),
        address_model=apps.get_model("clients", "Address"),
    )
    if done.customers or done.addresses or done.unparseable:
        print(
            f"\n  Phone numbers: {done.customers} customers' and {done.addresses} addresses' "
            f"rewritten in the international format; {done.unparseable} left as they were "
            "(not valid numbers)."
        )


class Migration(migrations.Migration):
    dependencies = [("clients", "0018_tags_audit_action")]

    operations = [migrations.RunPython(phones_international, migrations.RunPython.noop)]
