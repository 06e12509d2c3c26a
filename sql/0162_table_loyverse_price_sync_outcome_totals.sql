-- Cumulative outcomes of price changes per restaurant: what `loyverse-sync metrics` exports as
-- the counter loyverse_sync_items_total. Kept apart from the queue so that a scrape reads a
-- few rows per restaurant, and so that pruning the queue, retrying or resolving rows, or
-- deleting an account never lowers a total. A restaurant's totals go with the restaurant.
create table loyverse.loyverse_price_sync_outcome_totals (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    outcome text not null
        constraint outcome_total_outcome_is_valid check (outcome in ('done', 'failed', 'dead')),
    total bigint not null default 0
        constraint outcome_total_is_nonnegative check (total >= 0),
    constraint loyverse_price_sync_outcome_totals_pkey primary key (restaurant_id, outcome)
);

comment on table loyverse.loyverse_price_sync_outcome_totals is
    'How many times a price-sync queue row of each restaurant entered status done, failed or dead '
    '(a row that enters one again counts again). Only ever increases: kept by '
    'loyverse.complete_price_sync_batch and the queue''s trigger _100_count_outcome; '
    'seeded by migration 0056 from the queue rows retained then. '
    'Read by `loyverse-sync metrics`.';

comment on column loyverse.loyverse_price_sync_outcome_totals.total is
    'Times a row of this restaurant entered this outcome (loyverse_sync_items_total).';
