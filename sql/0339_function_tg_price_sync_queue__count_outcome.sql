-- Every way a queue row enters done, failed or dead that loyverse.complete_price_sync_batch
-- does not count itself (it counts its whole batch in one statement per outcome and sets
-- loyverse_sync.outcomes_counted for its duration): expired leases that dead-letter a row,
-- rows changed by hand. One row at a time; the trigger's WHEN clause keeps it
-- from running for any other change (the products trigger's upserts never fire it).
create function loyverse.tg_price_sync_queue__count_outcome()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    perform loyverse._add_outcome_totals(array[new.restaurant_id], array[new.status]);
    return null;
end;
$$;
comment on function loyverse.tg_price_sync_queue__count_outcome() is
    'Add 1 to the restaurant''s total of the outcome (done, failed, dead) a queue row entered, '
    'unless loyverse.complete_price_sync_batch counts it itself. Rows of an unknown restaurant are not counted.';
