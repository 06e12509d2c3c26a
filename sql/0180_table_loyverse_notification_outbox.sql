-- Emails waiting to be sent (error digests, alerts, recoveries): written in the transaction
-- that decides them, sent by the worker, so none is lost or sent for a rolled-back change.
create table loyverse.loyverse_notification_outbox (
    id bigint generated always as identity primary key,
    restaurant_id uuid references public.restaurants (id) on delete cascade,
    kind text not null
        constraint notification_kind_is_valid check (kind in ('ERROR_DIGEST', 'ALERT', 'RECOVERY')),
    recipient text not null
        constraint notification_recipient_is_an_email check (recipient ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    subject text not null,
    body text not null,
    payload jsonb not null default '{}',
    dedupe_key text,
    status text not null default 'pending'
        constraint notification_status_is_valid check (status in ('pending', 'sending', 'sent', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text,
    created_at timestamptz not null default now(),
    sent_at timestamptz,
    constraint loyverse_notification_outbox_dedupe_key_key unique (dedupe_key)
);

create index loyverse_notification_outbox_pending_idx on loyverse.loyverse_notification_outbox (next_attempt_at) where status = 'pending';

comment on table loyverse.loyverse_notification_outbox is 'Emails waiting to be sent (error digests, alerts, recoveries); sent by the worker.';
