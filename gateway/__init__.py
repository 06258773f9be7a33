"""The webhook gateway: signed HTTP webhooks in (ordernotify's own events, Shopify, WooCommerce, Saleor), validated
order events out on the events topic, acknowledged by the broker before the sender hears 2xx."""
