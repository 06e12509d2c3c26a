-- Queue the database's current price of some products (manual full sync, retry, conflict
-- resolution, a worker that lost its lease, a settings change that widens what is synced):
-- the same upsert as the trigger, due now or at p_due_at (a settings change follows the
-- restaurant's frequency: MANUAL rows wait for an explicit trigger).
create function loyverse.enqueue_current_prices(
    p_product_ids uuid[],
    p_source text,
    p_priority_boost integer default 0,
    p_due_at timestamptz default null  -- null: now
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
    v_accounts bigint[];
    v_account bigint;
begin
    with wanted as (
        select p.id as product_id, m.restaurant_id, m.account_id, m.last_synced_price as old_price,
               p.price as new_price,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor) as price_to_send,
               s.priority + p_priority_boost as priority,
               s.max_attempts,
               not s.paused and coalesce(p_due_at, now()) <= now() as wake,
               m.loyverse_item_id
          from public.products p
          join loyverse.loyverse_item_mappings m on m.product_id = p.id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.loyverse_accounts a on a.id = m.account_id
         where p.id = any (p_product_ids)
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
           and m.loyverse_pricing_type = 'FIXED'  -- a VARIABLE price is entered at the counter
           -- a product deleted meanwhile is skipped, one being deleted waits for this commit
           -- (the queue has no foreign key to products: sql/0333)
           for key share of p
    ), upserted as (
        insert into loyverse.loyverse_price_sync_queue as q
               (product_id, restaurant_id, account_id, source, priority, old_price, new_price,
                price_to_send, max_attempts, next_attempt_at, loyverse_item_id)
        select w.product_id, w.restaurant_id, w.account_id, p_source, w.priority, w.old_price,
               w.new_price, w.price_to_send, w.max_attempts, coalesce(p_due_at, now()), w.loyverse_item_id
          from wanted w
        on conflict (product_id) where status = 'pending' do update
           set new_price = excluded.new_price,
               price_to_send = excluded.price_to_send,
               version = q.version + case when q.price_to_send = excluded.price_to_send then 0 else 1 end,
               source = excluded.source,
               loyverse_item_id = excluded.loyverse_item_id,
               priority = greatest(q.priority, excluded.priority),
               next_attempt_at = least(q.next_attempt_at, coalesce(p_due_at, now())),
               updated_at = now()
        returning q.id, q.product_id, q.account_id
    ), superseded as (
        -- a newer price of a product supersedes its held change (the claim checks the new one)
        update loyverse.loyverse_price_sync_queue h
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'held change superseded by a newer change'
          from upserted u
         where h.product_id = u.product_id and h.status = 'held' and h.id < u.id
    )
    select count(*), array_agg(distinct u.account_id) filter (where w.wake)
      into v_count, v_accounts
      from upserted u join wanted w on w.product_id = u.product_id;

    if v_accounts is not null then
        foreach v_account in array v_accounts loop
            perform loyverse.wake_price_sync(v_account);
        end loop;
    end if;
    return v_count;
end;
$$;
comment on function loyverse.enqueue_current_prices(uuid[], text, integer, timestamptz) is
    'Queue the current price of the given products (due at p_due_at, default now; priority raised by '
    'p_priority_boost) and wake their accounts when due now; returns the rows queued. Skips products '
    'whose restaurant does not sync to Loyverse and VARIABLE prices; a held change of a queued product is '
    'superseded (cancelled).';
