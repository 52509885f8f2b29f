"""The envplane command line (typer + rich)."""
