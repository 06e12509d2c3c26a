-- Add queue rows that entered an outcome to loyverse.loyverse_price_sync_outcome_totals:
-- pairs (restaurant, status), of which only done, failed and dead count; one upsert per
-- (restaurant, outcome), in restaurant order so that concurrent callers lock the same rows
-- in the same order; restaurants that are gone are skipped. Used by
-- complete_price_sync_batch (a whole batch per outcome) and the queue's row trigger.
-- Returns the number of (restaurant, outcome) totals changed.
create function loyverse._add_outcome_totals(p_restaurant_ids uuid[], p_statuses text[])
returns integer
language sql
set search_path = ''
as $$
    with added as (
        insert into loyverse.loyverse_price_sync_outcome_totals as t (restaurant_id, outcome, total)
        select g.restaurant_id, g.outcome, g.n
          from (select c.restaurant_id, c.outcome, count(*) as n
                  from unnest(p_restaurant_ids, p_statuses) as c (restaurant_id, outcome)
                 where c.outcome in ('done', 'failed', 'dead')
                 group by c.restaurant_id, c.outcome) g
         where exists (select 1 from public.restaurants x where x.id = g.restaurant_id)
         order by g.restaurant_id
        on conflict (restaurant_id, outcome) do update set total = t.total + excluded.total
        returning 1
    )
    select count(*)::integer from added
$$;
comment on function loyverse._add_outcome_totals(uuid[], text[]) is
    'Internal: add the (restaurant, status) pairs that are done, failed or dead to the outcome totals.';
