"""Health judged from outside the Dagster daemon: the probe and the watchdog."""
