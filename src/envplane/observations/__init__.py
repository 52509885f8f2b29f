"""Observations: task observations from workflow engines in, actions out (issue 12; being built).

So far the evaluation side: reading Nextflow traces (``service/traces.py``), replaying them
through memory policies online (``service/replay.py``), and the policies (``service/policies.py``).
"""
