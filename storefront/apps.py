from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "storefront"
    verbose_name = "Storefront API"

    def ready(self):
        from orders.services import Attribution, attribution_finder_register
        from storefront.selectors import launch_attributions

        def last_launches(orders):
            return [
                None if found is None else Attribution(*found)
                for found in launch_attributions(orders)
            ]

        # Orders placed without a source take the one of the launch that brought the customer.
        attribution_finder_register(last_launches)
