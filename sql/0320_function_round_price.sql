-- The price a restaurant sends to Loyverse: its rounding rule applied to our price, at the
-- account currency's decimals. Pure and immutable, so it can run inside the trigger's set.
-- No SET search_path on purpose: a SET clause keeps the planner from inlining a SQL function,
-- and the trigger then runs it as a separate query per row (measured: most of a 20,000-row
-- bulk UPDATE's trigger time). Every function and operator is schema-qualified instead, so
-- the caller's search_path cannot change what it does.
create function loyverse.round_price(p_price numeric, p_rule text, p_decimal_places integer)
returns numeric
language sql
immutable
parallel safe
as $$
    -- The step of a rule is never finer than the currency allows: NEAREST_0.05 in a
    -- 1-decimal currency rounds to 0.1, every rule in a 0-decimal currency rounds to 1
    -- (decimal_places is 0..3: accounts.decimal_places_is_between_0_and_3).
    select pg_catalog.round(
        case
            when p_rule operator(pg_catalog.=) 'NONE' then p_price
            when p_rule operator(pg_catalog.=) 'NEAREST_0.05' then
                pg_catalog.round(p_price operator(pg_catalog./) (case when p_decimal_places operator(pg_catalog.>=) 2 then 0.05 when p_decimal_places operator(pg_catalog.=) 1 then 0.1 else 1.0 end))
                    operator(pg_catalog.*) (case when p_decimal_places operator(pg_catalog.>=) 2 then 0.05 when p_decimal_places operator(pg_catalog.=) 1 then 0.1 else 1.0 end)
            when p_rule operator(pg_catalog.=) 'NEAREST_0.10' then
                pg_catalog.round(p_price operator(pg_catalog./) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end))
                    operator(pg_catalog.*) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end)
            when p_rule operator(pg_catalog.=) 'UP' then
                pg_catalog.ceil(p_price operator(pg_catalog./) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end))
                    operator(pg_catalog.*) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end)
            when p_rule operator(pg_catalog.=) 'DOWN' then
                pg_catalog.floor(p_price operator(pg_catalog./) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end))
                    operator(pg_catalog.*) (case when p_decimal_places operator(pg_catalog.>=) 1 then 0.10 else 1.0 end)
        end,
        p_decimal_places)
$$;
comment on function loyverse.round_price(numeric, text, integer) is
    'Price after a rounding rule, at the currency''s decimals. NONE: the currency''s decimals '
    '(half away from zero); NEAREST_0.05 / NEAREST_0.10: nearest multiple (ties away from zero); '
    'UP / DOWN: the next multiple of 0.10 at or above / at or below. A step finer than the '
    'currency allows becomes one unit of its last decimal (1 for 0-decimal currencies). '
    'Unknown rule: null.';
