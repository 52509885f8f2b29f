"""The services capability's service layer (no transport code)."""
