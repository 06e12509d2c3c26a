-- Undo 0052: rate_governor_take is the insert / select for update / update version again.

create or replace function loyverse.rate_governor_take(p_account_id bigint, p_requests integer default 1)
returns double precision
language plpgsql
set search_path = ''
as $$
-- Reserve p_requests slots and return how many seconds the caller must wait before sending.
-- Refill rate = rate_limit_requests * safety / window; burst = what the safety margin leaves
-- spare, halved, so burst + rate * window stays under the documented limit in ANY window.
-- Reservations make tokens negative: later callers queue up behind earlier ones, in order.
declare
    v_limit integer;
    v_window double precision;
    v_safety double precision;
    v_rate double precision;
    v_burst double precision;
    v_now timestamptz := clock_timestamp();
    v_state loyverse.loyverse_account_rate_state;
    v_tokens double precision;
begin
    if p_requests is null or p_requests < 1 then
        raise exception 'rate_governor_take: p_requests must be >= 1, got %', p_requests
            using errcode = 'invalid_parameter_value';
    end if;
    select a.rate_limit_requests, a.rate_limit_window_seconds, a.rate_limit_safety
      into v_limit, v_window, v_safety
      from loyverse.loyverse_accounts a where a.id = p_account_id;
    if not found then
        raise exception 'rate_governor_take: no Loyverse account with id %', p_account_id
            using errcode = 'no_data_found';
    end if;
    v_rate := v_limit * v_safety / v_window;
    v_burst := greatest(1, floor(v_limit * (1 - v_safety) / 2));

    insert into loyverse.loyverse_account_rate_state (account_id, tokens, refreshed_at)
    values (p_account_id, v_burst, v_now)
    on conflict (account_id) do nothing;

    -- The row lock serialises takers of one account; it is held for microseconds.
    select * into v_state from loyverse.loyverse_account_rate_state s where s.account_id = p_account_id for update;
    if v_state.slow_until > v_now then
        v_rate := v_rate / 2;   -- after a 429 we spend half the budget for one window
    end if;
    v_tokens := least(v_burst, v_state.tokens + extract(epoch from v_now - v_state.refreshed_at) * v_rate);
    v_tokens := v_tokens - p_requests;

    update loyverse.loyverse_account_rate_state s
       set tokens = v_tokens,
           refreshed_at = v_now,
           requests_total = s.requests_total + p_requests
     where s.account_id = p_account_id;

    return case when v_tokens >= 0 then 0 else -v_tokens / v_rate end;
end;
$$;

comment on function loyverse.rate_governor_take(bigint, integer) is
    'Reserve p_requests Loyverse requests for the account; returns the seconds to wait before sending them.';
