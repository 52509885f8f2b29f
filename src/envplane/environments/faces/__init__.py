"""The transports of the environments capability: each turns its wire format into a handler
call (``handlers.py``) or, for the UV Venv Manager protocol, a service call."""
