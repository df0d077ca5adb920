from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "storefront"
    verbose_name = "Storefront API"

    def ready(self):
        from orders.services import Attribution, attribution_finder_register
        from storefront.selectors import launch_attributing_order

        def last_launch(customer_id, placed_at):
            launch = launch_attributing_order(customer_id=customer_id, placed_at=placed_at)
            if launch is None:
                return None
            return Attribution(source=launch.source, medium=launch.medium, campaign=launch.campaign)

        # Orders placed without a source take the one of the launch that brought the customer.
        attribution_finder_register(last_launch)
