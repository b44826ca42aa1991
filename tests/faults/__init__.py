"""Tests that break things on purpose: kills, torn writes, a second worker, a rebuilt mailbox."""
