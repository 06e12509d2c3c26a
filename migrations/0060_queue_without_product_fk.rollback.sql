-- Undo 0060: the queue's product_id references products again (rows whose product is gone
-- are deleted first, as the cascade would have), fillfactor 70, no DELETE trigger on products.

drop trigger _110_delete_price_sync_rows on public.products;
drop function loyverse.tg_products__delete_price_sync_rows();

delete from loyverse.loyverse_price_sync_queue q
 where not exists (select 1 from public.products p where p.id = q.product_id);
alter table loyverse.loyverse_price_sync_queue
    add constraint loyverse_price_sync_queue_product_id_fkey
    foreign key (product_id) references public.products (id) on delete cascade;
alter table loyverse.loyverse_price_sync_queue set (fillfactor = 70);

create or replace function loyverse.enqueue_current_prices(
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
          join loyverse.accounts a on a.id = m.account_id
         where p.id = any (p_product_ids)
           and s.enabled
           and s.sync_direction in ('TO_LOYVERSE', 'BIDIRECTIONAL')
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
        returning q.product_id, q.account_id
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
