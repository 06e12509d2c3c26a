-- Sync history: one row per price-sync batch, manual trigger, retry and a person's decision
-- on held changes or a VARIABLE price (approve, reject, make fixed). A role of the main app sees
-- only its restaurants' rows (loyverse.readable_restaurants).
create view loyverse.price_sync_history as
select g.id as log_id,
       g.started_at,
       g.completed_at,
       g.completed_at - g.started_at as duration,
       g.sync_type,
       g.status,
       g.account_id,
       g.restaurant_id,
       case when jsonb_typeof(g.details->'restaurant_ids') = 'array'
            then array(select jsonb_array_elements_text(g.details->'restaurant_ids'))::uuid[]
            else array_remove(array[g.restaurant_id], null) end as restaurant_ids,
       g.items_total,
       g.items_succeeded,
       g.items_failed,
       g.items_skipped,
       g.requests_made,
       g.error_details
  from loyverse.loyverse_sync_logs g
 where g.sync_type in ('PRICE_SYNC', 'MANUAL_TRIGGER', 'RETRY', 'APPROVE', 'REJECT', 'MAKE_FIXED')
   -- a role of the main app reads only rows of its restaurants (loyverse.readable_restaurants: null = all)
   and ((select loyverse.readable_restaurants(current_user)) is null
        or case when jsonb_typeof(g.details->'restaurant_ids') = 'array'
                then array(select jsonb_array_elements_text(g.details->'restaurant_ids'))::uuid[]
                else array_remove(array[g.restaurant_id], null) end && (select loyverse.readable_restaurants(current_user)));
comment on view loyverse.price_sync_history is
    'Price-sync history: each batch a worker wrote (items, requests, errors), each manual trigger and retry, '
    'each approval or rejection of held changes and each price made fixed. '
    'restaurant_ids lists every restaurant of a batch (restaurant_id is set only when there is one).';
