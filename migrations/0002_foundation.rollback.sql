-- Undo 0002: drop the integration's objects and the catalogue. Roles stay (cluster-wide,
-- and other databases on the server may use them).
drop view if exists loyverse.restaurant_overview;
drop view if exists loyverse.account_overview;
drop function if exists loyverse.rate_governor_penalize(bigint, double precision);
drop function if exists loyverse.rate_governor_take(bigint, integer);
drop table if exists loyverse.loyverse_notification_outbox;
drop table if exists loyverse.loyverse_import_journal;
drop table if exists loyverse.loyverse_import_runs;
drop table if exists loyverse.loyverse_sync_logs;
drop table if exists loyverse.loyverse_price_sync_queue;
drop table if exists loyverse.loyverse_price_sync_settings;
drop table if exists loyverse.loyverse_item_mappings;
drop table if exists loyverse.loyverse_restaurant_links;
drop table if exists loyverse.account_rate_state;
drop table if exists loyverse.accounts;
drop table if exists public.product_modifier_groups;
drop table if exists public.modifier_options;
drop table if exists public.modifier_groups;
drop table if exists public.products;
drop table if exists public.product_groups;
drop table if exists public.categories;
drop table if exists public.restaurants;
