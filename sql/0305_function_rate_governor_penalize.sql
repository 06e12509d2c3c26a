-- After a 429: pause every process on the account and halve its rate for one window.
create function loyverse.rate_governor_penalize(p_account_id bigint, p_retry_after double precision default null)
returns void
language plpgsql
set search_path = ''
as $$
-- Called after a 429: nobody sends for p_retry_after seconds (or window/limit * 8 when
-- Loyverse said nothing), and the refill runs at half speed for one window.
declare
    v_limit integer;
    v_window double precision;
    v_safety double precision;
    v_rate double precision;
    v_pause double precision;
    v_now timestamptz := clock_timestamp();
begin
    select a.rate_limit_requests, a.rate_limit_window_seconds, a.rate_limit_safety
      into v_limit, v_window, v_safety
      from loyverse.loyverse_accounts a where a.id = p_account_id;
    if not found then
        raise exception 'rate_governor_penalize: no Loyverse account with id %', p_account_id
            using errcode = 'no_data_found';
    end if;
    v_rate := v_limit * v_safety / v_window / 2;
    v_pause := greatest(coalesce(p_retry_after, 0), v_window / v_limit * 8);

    insert into loyverse.loyverse_account_rate_state (account_id, tokens, refreshed_at)
    values (p_account_id, 0, v_now)
    on conflict (account_id) do nothing;

    update loyverse.loyverse_account_rate_state s
       set tokens = least(s.tokens, 0) - v_pause * v_rate,
           refreshed_at = greatest(s.refreshed_at, v_now),
           throttled_until = v_now + make_interval(secs => v_pause),
           slow_until = v_now + make_interval(secs => v_window),
           rate_limited_total = s.rate_limited_total + 1,
           last_rate_limited_at = v_now
     where s.account_id = p_account_id;
end;
$$;

comment on function loyverse.rate_governor_penalize(bigint, double precision) is
    'Record a 429 from Loyverse: pause the account''s sends and halve its rate for one window.';
