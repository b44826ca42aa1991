"""Imported by a sandbox process as it starts, in tests/unit/test_sandbox.py: a process that dies
before it is ready (as one killed by the kernel for memory while importing would)."""
import os

os._exit(3)
