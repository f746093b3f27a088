"""Helpers shared by the test suite: the emulators (launcher re-exports, tokens, an
independent reader) and the demo story's target checks."""
