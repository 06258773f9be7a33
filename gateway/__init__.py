"""The webhook gateway: signed HTTP webhooks from shop platforms in, validated order events on ``orders.events`` out."""
