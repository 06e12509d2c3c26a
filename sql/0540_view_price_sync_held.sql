-- Price changes held by the guardrails (hold_change_percent, hold_change_amount,
-- hold_below_price): what a person approves or rejects (`sync approve` / `sync reject`).
create view loyverse.price_sync_held as
select q.id as queue_id,
       q.restaurant_id,
       r.name as restaurant_name,
       q.product_id,
       p.name as product_name,
       (q.error_details ->> 'loyverse_price')::numeric as loyverse_price,
       q.new_price,
       q.price_to_send,
       p.price as current_price,
       q.last_error_code as reason_code,
       q.last_error as reason,
       q.updated_at as held_at,
       q.source
  from loyverse.loyverse_price_sync_queue q
  join public.restaurants r on r.id = q.restaurant_id
  join public.products p on p.id = q.product_id
 where q.status = 'held';
comment on view loyverse.price_sync_held is
    'Price changes held (not sent) because they cross a guardrail of their restaurant: the price Loyverse '
    'holds, ours, what would be sent and why it was held. Release with loyverse.approve_held_price_changes '
    '(`sync approve`), refuse with loyverse.reject_held_price_changes (`sync reject`); a newer price of the '
    'product supersedes its held change.';
comment on column loyverse.price_sync_held.reason_code is
    'HELD_CHANGE_PERCENT, HELD_CHANGE_AMOUNT or HELD_BELOW_FLOOR: the guardrail crossed.';
