"""Load and fault runs against the Procfile's processes; see docs/RELIABILITY.md."""
