"""The on-device daemon: device config, the scheduler, persisted state, stats and metrics."""
