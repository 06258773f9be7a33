"""One module per shop platform: its signature check and the mapping of its payloads to order events."""
