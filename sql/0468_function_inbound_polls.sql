-- Polling, the safety net under webhooks: which accounts are due a GET /items?updated_at_min
-- read, and the cursor after a read. Rows of loyverse_inbound_settings are made here on first use.
create function loyverse.inbound_settings_row(p_account_id bigint)
returns loyverse.loyverse_inbound_settings
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_row loyverse.loyverse_inbound_settings;
begin
    insert into loyverse.loyverse_inbound_settings (account_id) values (p_account_id)
    on conflict (account_id) do nothing;
    select * into v_row from loyverse.loyverse_inbound_settings s where s.account_id = p_account_id;
    return v_row;
end;
$$;
comment on function loyverse.inbound_settings_row(bigint) is
    'The account''s inbound settings (webhook URL secret, polling), created with defaults on first use.';

create function loyverse.due_inbound_polls()
returns table (account_id bigint, updated_at_min timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- every account with a linked restaurant that hears Loyverse gets a row
    insert into loyverse.loyverse_inbound_settings (account_id)
    select distinct l.account_id
      from loyverse.loyverse_restaurant_links l
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = l.restaurant_id
     where s.enabled and s.sync_direction in ('FROM_LOYVERSE', 'BIDIRECTIONAL')
    on conflict do nothing;
    return query
    select i.account_id, i.polled_until - make_interval(secs => i.poll_overlap_seconds)
      from loyverse.loyverse_inbound_settings i
     where i.poll_enabled
       and (i.last_polled_at is null or i.last_polled_at + make_interval(secs => i.poll_interval_seconds) <= now())
       and exists (select 1 from loyverse.loyverse_restaurant_links l
                     join loyverse.loyverse_price_sync_settings s on s.restaurant_id = l.restaurant_id
                    where l.account_id = i.account_id and s.enabled
                      and s.sync_direction in ('FROM_LOYVERSE', 'BIDIRECTIONAL'));
end;
$$;
comment on function loyverse.due_inbound_polls() is
    'Accounts due a poll (a FROM_LOYVERSE or BIDIRECTIONAL restaurant, poll_enabled, interval elapsed) and the '
    'updated_at_min to read from (null: never polled; the poller starts its cursor at now).';

create function loyverse.finish_inbound_poll(p_account_id bigint, p_polled_until timestamptz)
returns void
language sql
security definer
set search_path = ''
as $$
    update loyverse.loyverse_inbound_settings s
       set last_polled_at = now(),
           polled_until = greatest(s.polled_until, p_polled_until),
           updated_at = now()
     where s.account_id = p_account_id;
$$;
comment on function loyverse.finish_inbound_poll(bigint, timestamptz) is
    'After a poll: remember when, and move the cursor to the newest updated_at read (never backwards).';
