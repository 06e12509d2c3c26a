"""The worker's tuning from its environment: what is read, and what moved to the settings."""

from __future__ import annotations

import logging

from loyverse_sync.worker import tasks


def test_tuning_is_read_and_the_old_backoff_variables_say_where_they_went(caplog):
    env = {"LOYVERSE_SYNC_LEASE_SECONDS": "30", "LOYVERSE_SYNC_BATCH_ITEMS": "50",
           "LOYVERSE_SYNC_BACKOFF_BASE": "0.2", "LOYVERSE_SYNC_BACKOFF_CAP": "1.5"}
    with caplog.at_level(logging.WARNING, logger="loyverse_sync.worker"):
        config = tasks.engine_config_from_env(env)
    assert (config.lease_seconds, config.max_items) == (30.0, 50)
    assert not hasattr(config, "backoff_base") and not hasattr(config, "backoff_cap")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("backoff_base_seconds" in m and "no longer read" in m for m in warned), warned


def test_no_warning_without_the_old_variables(caplog):
    with caplog.at_level(logging.WARNING, logger="loyverse_sync.worker"):
        tasks.engine_config_from_env({})
    assert caplog.records == []
