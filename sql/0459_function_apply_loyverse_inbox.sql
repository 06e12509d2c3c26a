-- The apply job's statement: turn an account's pending deliveries into changes, oldest
-- first, each delivery in its own subtransaction (all of it or nothing). A delivery that
-- touches a product whose price write is in flight waits a second (LVS01); one that cannot
-- be read is failed with the reason, audited, and never retried. A delivery's products are
-- locked first, without waiting, so the main app's UPDATEs never lose a deadlock to it.
create function loyverse.apply_loyverse_inbox(p_account_id bigint, p_limit integer default 50)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_row record;
    v_doc jsonb;
    v_merchant text;
    v_obj jsonb;
    v_counts jsonb;
    v_part jsonb;
    v_key text;
    v_outcome text;
    v_error text;
    v_applied integer := 0;
    v_failed integer := 0;
    v_deferred integer := 0;
    v_read_at timestamptz;
    v_refresh text[] := '{}';
    v_lock_timeout text := pg_catalog.current_setting('lock_timeout');
    v_offset bigint;
begin
    -- Any other lock (a queue row a worker is completing) is waited for 100 ms at most,
    -- then the delivery is retried in a second.
    perform pg_catalog.set_config('lock_timeout', '100ms', true);
    select a.merchant_id into v_merchant from loyverse.loyverse_accounts a where a.id = p_account_id;
    for v_row in
        select i.id, i.body, i.source, i.received_at from loyverse.loyverse_inbox i
         where i.account_id = p_account_id and i.status = 'pending' and i.next_attempt_at <= now()
         order by i.id
         limit p_limit
           for update skip locked
    loop
        v_counts := '{}';
        begin
            begin
                v_doc := convert_from(v_row.body, 'UTF8')::jsonb;
            exception when others then
                raise exception 'body is not JSON: %', sqlerrm using errcode = 'LVS02';
            end;
            if jsonb_typeof(v_doc) <> 'object' then
                raise exception 'body is not a JSON object' using errcode = 'LVS02';
            end if;
            if v_merchant is not null and v_doc->>'merchant_id' is not null and v_doc->>'merchant_id' <> v_merchant then
                raise exception 'merchant_id % is not this account''s (%)', v_doc->>'merchant_id', v_merchant
                    using errcode = 'LVS02';
            end if;
            -- Loyverse's clock, measured: a webhook's created_at (Loyverse's clock) minus when
            -- we received it (ours) is the clock offset minus the delivery time; the largest
            -- such sample of the last hour is the estimate (a late or retried delivery gives a
            -- smaller one). Written only when it changes the estimate.
            if v_row.source = 'webhook' then
                begin
                    v_offset := (extract(epoch from ((v_doc->>'created_at')::timestamptz - v_row.received_at))
                                 * 1000)::bigint;
                exception when others then
                    v_offset := null;  -- no or a malformed created_at: no sample, the items still apply
                end;
                -- a sample past a day is a test's or a broken clock's, not a skew to correct
                if v_offset is not null and abs(v_offset) <= 86400000 then
                    update loyverse.loyverse_inbound_settings s
                       set loyverse_clock_offset_ms = v_offset, loyverse_clock_offset_at = now()
                     where s.account_id = p_account_id
                       and (s.loyverse_clock_offset_ms is null or v_offset > s.loyverse_clock_offset_ms
                            or s.loyverse_clock_offset_at < now() - interval '1 hour');
                end if;
            end if;
            -- The delivery's products, all locked before anything else and without waiting
            -- (NOWAIT: lock_not_available, retried in a second). An UPDATE of several products
            -- locks them in its own order while the delivery would lock them item by item: if
            -- both waited, PostgreSQL could pick the app's statement as the deadlock victim.
            -- This way the delivery never waits for a product the app holds.
            perform 1
               from public.products p
              where p.id in (select m.product_id from loyverse.loyverse_item_mappings m
                              where m.account_id = p_account_id
                                and (m.loyverse_item_id in (select o->>'id' from jsonb_array_elements(
                                         case when jsonb_typeof(v_doc->'items') = 'array' then v_doc->'items'
                                              else '[]' end) o)
                                     or m.loyverse_variant_id in (select o->>'variant_id' from jsonb_array_elements(
                                         case when jsonb_typeof(v_doc->'inventory_levels') = 'array'
                                              then v_doc->'inventory_levels' else '[]' end) o)))
              order by p.id
                for update of p nowait;
            -- what we read ourselves (poll, refresh) says when it was read; a webhook does not
            v_read_at := case when v_row.source in ('poll', 'refresh') then (v_doc->>'read_at')::timestamptz end;
            if v_doc->>'type' = 'items.update' and jsonb_typeof(v_doc->'items') = 'array' then
                for v_obj in select * from jsonb_array_elements(v_doc->'items') loop
                    v_part := loyverse._apply_loyverse_item(v_row.id, p_account_id, v_obj, v_read_at);
                    if (v_part->>'refresh')::int > 0 then
                        v_refresh := v_refresh || (v_obj->>'id');
                    end if;
                    for v_key in select jsonb_object_keys(v_part) loop
                        v_counts := v_counts || jsonb_build_object(
                            v_key, coalesce((v_counts->>v_key)::int, 0) + (v_part->>v_key)::int);
                    end loop;
                end loop;
            elsif v_doc->>'type' = 'inventory_levels.update' and jsonb_typeof(v_doc->'inventory_levels') = 'array' then
                for v_obj in select * from jsonb_array_elements(v_doc->'inventory_levels') loop
                    v_outcome := loyverse._apply_loyverse_inventory_level(v_row.id, p_account_id, v_obj);
                    v_counts := v_counts || jsonb_build_object(
                        v_outcome, coalesce((v_counts->>v_outcome)::int, 0) + 1);
                end loop;
            else
                v_counts := jsonb_build_object('ignored_type', coalesce(v_doc->>'type', 'none'));
            end if;
            update loyverse.loyverse_inbox i
               set status = 'applied', applied_at = now(), attempts = i.attempts + 1, result = v_counts,
                   last_error = null
             where i.id = v_row.id;
            v_applied := v_applied + 1;
        exception
            when sqlstate 'LVS01' or deadlock_detected or serialization_failure or lock_not_available then
                get stacked diagnostics v_error = message_text;
                update loyverse.loyverse_inbox i
                   set attempts = i.attempts + 1, next_attempt_at = now() + interval '1 second',
                       last_error = v_error
                 where i.id = v_row.id;
                v_deferred := v_deferred + 1;
            when others then
                -- Unreadable (LVS02) or a value our tables refuse (a bad timestamp or number):
                -- a retry would fail the same way. Kept, failed, audited.
                get stacked diagnostics v_error = message_text;
                update loyverse.loyverse_inbox i
                   set status = 'failed', attempts = i.attempts + 1, last_error = left(v_error, 1000)
                 where i.id = v_row.id;
                insert into loyverse.loyverse_inbound_audit (account_id, inbox_id, decision, details)
                values (p_account_id, v_row.id, 'DELIVERY_FAILED', jsonb_build_object('error', left(v_error, 1000)));
                v_failed := v_failed + 1;
        end;
    end loop;
    perform pg_catalog.set_config('lock_timeout', v_lock_timeout, true);
    return jsonb_build_object(
        'applied', v_applied, 'failed', v_failed, 'deferred', v_deferred,
        'refresh_items', to_jsonb(array(select distinct unnest(v_refresh))),
        'remaining', (select count(*) from loyverse.loyverse_inbox i
                       where i.account_id = p_account_id and i.status = 'pending'),
        'next_due_seconds', (select greatest(0, extract(epoch from min(i.next_attempt_at) - now()))
                               from loyverse.loyverse_inbox i
                              where i.account_id = p_account_id and i.status = 'pending'));
end;
$$;
comment on function loyverse.apply_loyverse_inbox(bigint, integer) is
    'Apply up to p_limit pending deliveries of an account (oldest first; SKIP LOCKED). Returns '
    '{applied, failed, deferred, refresh_items (items to read again from Loyverse), remaining, next_due_seconds}.';
