-- One store price heard from Loyverse for one mapped product: decide and apply it. The
-- queue knows our unsent change (a pending or held row), the mapping the last agreed price.
-- Loyverse's price is written with loyverse_sync.origin = 'loyverse' (the products trigger
-- queues nothing) and becomes last_synced_price, so it is never pushed back.
create function loyverse._apply_loyverse_price(
    p_inbox_id bigint,
    p_product_id uuid,
    p_loyverse_price numeric,
    p_loyverse_updated_at timestamptz,
    p_read_at timestamptz default null
)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
    v record;
    v_lp numeric;
    v_ours numeric;
    v_row loyverse.loyverse_price_sync_queue;
    v_ours_at timestamptz;
    v_keep text;
    v_decision text;
    v_origin text;
    v_their_at timestamptz;
    v_their_at_early timestamptz;
begin
    -- The product's row lock orders this with the main app's UPDATEs: a change committed
    -- before it is in the queue by now, one after it sees our price and last_synced_price.
    select m.product_id, m.restaurant_id, m.account_id, m.loyverse_item_id, m.last_synced_price,
           m.price_factor, p.price,
           s.enabled, s.sync_direction, s.conflict_policy, s.price_rounding_rule, a.decimal_places,
           i.loyverse_clock_offset_ms
      into v
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
      join loyverse.loyverse_accounts a on a.id = m.account_id
      left join loyverse.loyverse_inbound_settings i on i.account_id = m.account_id
     where m.product_id = p_product_id
       for update of p, m;
    if not found or not v.enabled or v.sync_direction = 'TO_LOYVERSE' then
        return 'ignored';
    end if;
    v_lp := round(p_loyverse_price, v.decimal_places);
    -- Loyverse's updated_at on our clock: every comparison with our commit times below uses
    -- this, so a Loyverse clock minutes ahead (or behind) does not make its edits look newer
    -- (or older) than ours (loyverse_inbound_settings.loyverse_clock_offset_ms).
    v_their_at := p_loyverse_updated_at
                  - pg_catalog.make_interval(secs => coalesce(v.loyverse_clock_offset_ms, 0) / 1000.0);
    -- The offset is estimated short by the quickest delivery's transit time, so v_their_at may
    -- be that much later than the truth (0.27 s seen beside CPU burners: the echo of a write of
    -- ours then looked newer than its completion and was held as a conflict). The two tests
    -- below that only decide "ours, or read Loyverse again" allow for it; `latest` does not.
    v_their_at_early := v_their_at - interval '2 seconds';
    if v_lp is not distinct from v.last_synced_price then
        return 'unchanged';  -- the usual case: an items.update about another field or store, or our own write
    end if;

    -- Echo of a write of ours: the price a claimed row is writing now, or a price we wrote in a
    -- push that completed after Loyverse's version (a late, retried or reordered delivery of
    -- our own write). Compared by value: an older version of ours never overwrites a newer one.
    -- A write whose outcome we never learnt (its worker died holding the claim, or it timed
    -- out) may have landed: its price is in in_doubt_prices (of its own row, and of the pending
    -- row that superseded it) and counts as ours too while that row is open or completed after
    -- Loyverse's version (else its late delivery looks like an edit at the counter and, under
    -- `hold`, holds our newer change as a conflict no one made).
    if exists (select 1 from loyverse.loyverse_price_sync_queue q
                where q.product_id = p_product_id and q.status = 'processing' and q.price_to_send = v_lp)
       or exists (select 1 from loyverse.loyverse_price_sync_queue q
                   where q.product_id = p_product_id and q.status = 'done' and q.price_to_send = v_lp
                     and q.completed_at >= coalesce(v_their_at_early, '-infinity'))
       or exists (select 1 from loyverse.loyverse_price_sync_queue q
                   where q.product_id = p_product_id and q.in_doubt_prices is not null
                     and v_lp = any (q.in_doubt_prices)
                     and coalesce(q.completed_at, 'infinity') >= coalesce(v_their_at_early, '-infinity')) then
        insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                     decision, our_price, loyverse_price, details)
        values (v.account_id, v.restaurant_id, p_inbox_id, p_product_id, v.loyverse_item_id, 'ECHO_IGNORED',
                v.price, v_lp, jsonb_build_object('last_synced_price', v.last_synced_price,
                                                  'loyverse_updated_at', p_loyverse_updated_at));
        return 'echo';
    end if;
    -- A write of ours completed after this version was true (or, for a poll or refresh, after
    -- it was read), and Loyverse reported another price: this version may predate our write
    -- (then our write replaced it in Loyverse) or follow it (an edit at the counter). Only
    -- Loyverse's current state can tell: the job reads the item again (source refresh).
    if exists (select 1 from loyverse.loyverse_price_sync_queue q
                where q.product_id = p_product_id and q.status = 'done'
                  and q.completed_at >= coalesce(p_read_at, v_their_at_early, '-infinity')) then
        return 'refresh';
    end if;
    -- A write in flight: wait for it (its outcome decides what "ours" is); the whole delivery
    -- is retried shortly (apply_loyverse_inbox catches this).
    if exists (select 1 from loyverse.loyverse_price_sync_queue q
                where q.product_id = p_product_id and q.status = 'processing') then
        raise exception 'product %: a price write is in flight', p_product_id using errcode = 'LVS01';
    end if;

    -- Our unsent change: the pending row, else a held conflict.
    select q.* into v_row
      from loyverse.loyverse_price_sync_queue q
     where q.product_id = p_product_id and q.status in ('pending', 'conflict')
     order by (q.status = 'pending') desc, q.id desc
     limit 1
       for update;
    v_ours := loyverse.price_to_send(v.price, v.price_rounding_rule, v.decimal_places, v.price_factor);

    if v.sync_direction = 'FROM_LOYVERSE' or v_row.id is null then
        v_keep := 'apply';
        v_decision := 'PRICE_APPLIED';
    elsif round(v_ours, v.decimal_places) = v_lp then
        v_keep := 'agreed';
        v_decision := 'AGREED';
    else
        -- Both sides changed since the last agreed price.
        -- When our price was set: a pending row's last upsert; but a row that a `latest`
        -- decision made (source resolve, not edited since) carries the time of the price it
        -- kept, not the time of the decision; a held row, the time it was held with.
        v_ours_at := case when v_row.status = 'pending' and v_row.updated_at = v_row.created_at
                               and v_row.error_details ? 'ours_at'
                          then (v_row.error_details->>'ours_at')::timestamptz
                          when v_row.status = 'pending' then v_row.updated_at
                          else coalesce((v_row.error_details->>'ours_at')::timestamptz, v_row.created_at) end;
        v_keep := case v.conflict_policy
                      when 'latest' then case when v_their_at > v_ours_at then 'theirs' else 'ours' end
                      else v.conflict_policy end;
        v_decision := case v_keep when 'hold' then 'CONFLICT_HELD'
                                  when 'ours' then 'CONFLICT_KEPT_OURS' else 'CONFLICT_KEPT_THEIRS' end;
    end if;

    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                 decision, applied, our_price, loyverse_price, details)
    values (v.account_id, v.restaurant_id, p_inbox_id, p_product_id, v.loyverse_item_id, v_decision,
            v_keep <> 'hold', v.price, v_lp,
            jsonb_strip_nulls(jsonb_build_object(
                'last_synced_price', v.last_synced_price, 'loyverse_updated_at', p_loyverse_updated_at,
                'direction', v.sync_direction, 'policy', case when v_decision like 'CONFLICT%' then v.conflict_policy end,
                'ours_at', v_ours_at, 'queue_id', v_row.id,
                'loyverse_clock_offset_ms', case when v_decision like 'CONFLICT%' then v.loyverse_clock_offset_ms end)));

    if v_keep = 'apply' then
        v_origin := pg_catalog.current_setting('loyverse_sync.origin', true);
        perform pg_catalog.set_config('loyverse_sync.origin', 'loyverse', true);
        update public.products p
           set price = round(v_lp * v.price_factor, 2), updated_at = now()
         where p.id = p_product_id and p.price is distinct from round(v_lp * v.price_factor, 2);
        perform pg_catalog.set_config('loyverse_sync.origin', coalesce(v_origin, ''), true);
        update loyverse.loyverse_item_mappings m
           set last_synced_price = v_lp, last_synced_at = now(), sync_direction = 'FROM_LOYVERSE',
               updated_at = now()
         where m.product_id = p_product_id;
        return 'applied';
    end if;
    if v_keep = 'agreed' then
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'Loyverse already has this price (changed there too)'
         where q.id = v_row.id;
        update loyverse.loyverse_item_mappings m
           set last_synced_price = v_lp, last_synced_at = now(), updated_at = now()
         where m.product_id = p_product_id;
        return 'agreed';
    end if;

    -- Hold the conflict (a pending row becomes the held one, superseding older held rows);
    -- then ours / theirs decide it like `sync resolve` does.
    if v_row.status = 'pending' then
        update loyverse.loyverse_price_sync_queue q
           set status = 'cancelled', completed_at = now(), updated_at = now(),
               last_error = 'conflict superseded by a newer held change'
         where q.product_id = p_product_id and q.status = 'conflict';
        update loyverse.loyverse_price_sync_queue q
           set status = 'conflict', completed_at = now(), updated_at = now(),
               last_error = 'price changed in Loyverse too: ' || v_lp || ' there, ' || v_ours || ' ours',
               last_error_code = 'CONFLICT',
               error_details = jsonb_build_object('loyverse_price', v_lp, 'ours_at', v_ours_at,
                                                  'loyverse_updated_at', p_loyverse_updated_at,
                                                  'last_synced_price', v.last_synced_price, 'inbox_id', p_inbox_id)
         where q.id = v_row.id;
    else
        update loyverse.loyverse_price_sync_queue q
           set error_details = coalesce(q.error_details, '{}')
                   || jsonb_build_object('loyverse_price', v_lp, 'ours_at', v_ours_at,
                                         'loyverse_updated_at', p_loyverse_updated_at, 'inbox_id', p_inbox_id),
               updated_at = now()
         where q.id = v_row.id;
    end if;
    if v_keep in ('ours', 'theirs') then
        perform loyverse.resolve_price_sync_conflicts(v.restaurant_id, v_keep, p_product_id);
        -- The push that keeps ours remembers when ours was set, for the next `latest` decision.
        update loyverse.loyverse_price_sync_queue q
           set error_details = coalesce(q.error_details, '{}') || jsonb_build_object('ours_at', v_ours_at)
         where q.product_id = p_product_id and q.status = 'pending' and q.source = 'resolve'
           and v_keep = 'ours';
        return 'conflict_' || v_keep;
    end if;
    return 'conflict_held';
end;
$$;
comment on function loyverse._apply_loyverse_price(bigint, uuid, numeric, timestamptz, timestamptz) is
    'Internal to apply_loyverse_inbox: one store price Loyverse reported for a mapped product -> unchanged, '
    'echo (ignored), applied (FROM_LOYVERSE, or BIDIRECTIONAL with nothing unsent of ours), agreed, or a '
    'conflict decided by conflict_policy, or refresh (a write of ours completed after the version: read the '
    'item again); every decision but unchanged and refresh is audited. Raises LVS01 while a write of the '
    'product is in flight.';
