-- Open and recovered alert breaches per restaurant, so an alert is mailed once per change.
create table loyverse.loyverse_alert_state (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    alert text not null
        constraint alert_is_known check (alert in ('FAILURE_RATE', 'QUEUE_DEPTH', 'OLDEST_PENDING', 'DEAD_LETTERS', 'PRICE_DRIFT')),
    breached_at timestamptz not null default now(),
    recovered_at timestamptz,
    value double precision,
    threshold double precision,
    constraint loyverse_alert_state_pkey primary key (restaurant_id, alert, breached_at)
);

create unique index loyverse_alert_state_open_idx on loyverse.loyverse_alert_state (restaurant_id, alert)
    where recovered_at is null;

comment on table loyverse.loyverse_alert_state is 'Alert breaches per restaurant: open while recovered_at is null.';
