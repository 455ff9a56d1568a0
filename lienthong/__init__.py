"""lienthong: an event-driven integration hub between city agencies."""

__version__ = "0.1.0"
