"""The contract with the platform: Avro schemas, the typed event model and the wire codec."""
