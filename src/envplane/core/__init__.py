"""Core plumbing every capability runs on; it imports no capability.

``capability.Core`` is what a capability is given (settings, store, event bus, audit, metrics,
the data dir); ``capability.Capability`` is what it gives back to the daemon. The audit log
(``audit.py``) and domain events (``events.py``) are core tables with a subject (kind + id), so
every capability audits and streams the same way; ``retention.py`` keeps both bounded.
"""
