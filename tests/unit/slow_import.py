"""Imported by a sandbox process as it starts, in tests/unit/test_sandbox.py: a start slower
than the first document's whole allowance."""
import time

time.sleep(2)
