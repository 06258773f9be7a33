"""The bounce service: what comes back from the e-mails sent (bounces, complaints, auto-replies), read and acted on."""
