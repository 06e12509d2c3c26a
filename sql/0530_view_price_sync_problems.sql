-- Failed, dead-lettered and held (conflict) changes with their last error.
create view loyverse.price_sync_problems as
select q.id as queue_id,
       q.restaurant_id,
       r.name as restaurant_name,
       q.product_id,
       p.name as product_name,
       q.status,
       q.old_price,
       q.new_price,
       q.price_to_send,
       p.price as current_price,
       q.attempts,
       q.max_attempts,
       q.last_error_code,
       q.last_error,
       q.error_details,
       m.loyverse_item_id,
       m.loyverse_variant_id,
       m.loyverse_store_id,
       m.needs_attention,
       q.created_at,
       q.completed_at
  from loyverse.loyverse_price_sync_queue q
  join public.restaurants r on r.id = q.restaurant_id
  join public.products p on p.id = q.product_id
  left join loyverse.loyverse_item_mappings m on m.product_id = q.product_id
 where q.status in ('failed', 'dead', 'conflict');
comment on view loyverse.price_sync_problems is
    'Price changes that need a person: failed (not retryable, e.g. variant gone), dead (retries exhausted), '
    'conflict (edited in Loyverse, BIDIRECTIONAL). Fix with `sync retry` / `sync resolve`.';
comment on column loyverse.price_sync_problems.error_details is 'Loyverse''s error (code, details, field) or, for a conflict, the price found in Loyverse.';
