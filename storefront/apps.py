from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "storefront"
    verbose_name = "Storefront API"

    def ready(self):
        from orders.services import Attribution, attribution_finder_register
        from storefront.selectors import launch_attribution

        def last_launch(customer_id, placed_at):
            found = launch_attribution(customer_id=customer_id, placed_at=placed_at)
            if found is None:
                return None
            source, medium, campaign = found
            return Attribution(source=source, medium=medium, campaign=campaign)

        # Orders placed without a source take the one of the launch that brought the customer.
        attribution_finder_register(last_launch)
