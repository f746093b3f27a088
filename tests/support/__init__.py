"""Helpers shared by the test suite (emulator process control, admin client, tokens)."""
