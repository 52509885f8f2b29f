"""Activity: the audit log and the event stream of every capability, as services of their own
(``envplane.v1.OperationService``, ``envplane.v1.EventService``; ``/v1/operations``,
``/v1/events``; ``envplane ops``, ``envplane events watch``).

The records and the queries belong to the core (``core/audit.py``, ``core/events.py``,
``core/activity.py``); this slice is their faces, in the same shape as every capability:
``capability.py``, ``faces/``, ``handlers.py``.
"""
