"""The notification policy: which events become e-mails, when, and merged with what."""
