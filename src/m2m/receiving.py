"""Moved to ``m2m.client.receiving`` (the SDK); kept so that existing imports keep working."""

from m2m.client.receiving import CallbackVerifier, InvalidCallback, parse_status_message

__all__ = ["CallbackVerifier", "InvalidCallback", "parse_status_message"]
