"""Table and entity definitions served by the emulators (names, types, lengths, keys)."""
