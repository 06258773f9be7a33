"""The consuming side, in two stages: decide (the Kafka side) writes what to say into the outbox; deliver
(the SMTP side) renders and sends it. Shared between them: the notification model, the rules, the state store."""
