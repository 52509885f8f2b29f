"""Services: the backing services a workflow node needs (Redis, PostgreSQL, an LLM server),
started in dependency order, health-checked, adopted after a daemon restart; local processes or
Docker containers.

Being built (issue 11). Here so far: ``service/definitions.py`` and ``service/registry.py``,
the definitions, their TOML form with one message per problem, and the start/stop order;
``service/probes.py``, the health probes. The runtimes, the daemon's service and its faces come
next; the slice is not composed yet.
"""
