"""The consuming side: decide whether a customer should hear about an event, render, send, commit."""
