"""The workers capability's service layer: pools of warm worker processes (no transport code)."""
