"""Local development stacks: Airflow against the emulators (tests, demo)."""
