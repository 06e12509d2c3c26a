-- Audit every settings change (see loyverse.tg_price_sync_settings__log_change).
create trigger _100_log_change
    after update on loyverse.loyverse_price_sync_settings
    for each row when (old is distinct from new)
    execute function loyverse.tg_price_sync_settings__log_change();
