-- The rate governor's one call per Loyverse request: reserve slots in the account's shared
-- bucket and say how long to wait, so all processes together stay under the budget.
create function loyverse.rate_governor_take(p_account_id bigint, p_requests integer default 1)
returns double precision
language plpgsql
set search_path = ''
as $$
-- Reserve p_requests slots and return how many seconds the caller must wait before sending.
-- Refill rate = rate_limit_requests * safety / window; burst = what the safety margin leaves
-- spare, halved, so burst + rate * window stays under the documented limit in ANY window.
-- Reservations make tokens negative: later callers queue up behind earlier ones, in order.
-- Called before every Loyverse request, so the common case is two statements: the account's
-- limits, then one UPDATE that computes the new tokens from the row it locks.
declare
    v_limit integer;
    v_window double precision;
    v_safety double precision;
    v_rate double precision;
    v_burst double precision;
    v_now timestamptz := clock_timestamp();
    v_tokens double precision;
    v_slow boolean;
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

    for i in 1..2 loop
        -- The row lock serialises takers of one account; it is held for microseconds. The SET
        -- expressions see the row as locked (the latest version), like a SELECT ... FOR UPDATE.
        update loyverse.loyverse_account_rate_state s
           set tokens = least(v_burst, s.tokens + extract(epoch from v_now - s.refreshed_at)
                                       -- after a 429 we spend half the budget for one window
                                       * case when s.slow_until > v_now then v_rate / 2 else v_rate end)
                        - p_requests,
               refreshed_at = v_now,
               requests_total = s.requests_total + p_requests
         where s.account_id = p_account_id
        returning s.tokens, s.slow_until > v_now
             into v_tokens, v_slow;
        if found then
            if v_slow then
                v_rate := v_rate / 2;
            end if;
            return case when v_tokens >= 0 then 0 else -v_tokens / v_rate end;
        end if;
        -- The account's first take: create its bucket full (unless a concurrent taker just
        -- did), then take from it.
        insert into loyverse.loyverse_account_rate_state (account_id, tokens, refreshed_at)
        values (p_account_id, v_burst, v_now)
        on conflict (account_id) do nothing;
    end loop;
    -- only when the account was deleted while we ran
    raise exception 'rate_governor_take: no Loyverse account with id %', p_account_id
        using errcode = 'no_data_found';
end;
$$;

comment on function loyverse.rate_governor_take(bigint, integer) is
    'Reserve p_requests Loyverse requests for the account; returns the seconds to wait before sending them.';
