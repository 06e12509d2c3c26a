-- The price a restaurant sends to Loyverse: its rounding rule applied to our price, at the
-- account currency's decimals. Pure and immutable, so it can run inside the trigger's set.
create function loyverse.round_price(p_price numeric, p_rule text, p_decimal_places integer)
returns numeric
language sql
immutable
parallel safe
set search_path = ''
as $$
    -- The step of a rule is never finer than the currency allows: NEAREST_0.05 in a
    -- 1-decimal currency rounds to 0.1, every rule in a 0-decimal currency rounds to 1.
    select round(
        case p_rule
            when 'NONE' then p_price
            when 'NEAREST_0.05' then
                round(p_price / greatest(0.05, power(10::numeric, -p_decimal_places)))
                    * greatest(0.05, power(10::numeric, -p_decimal_places))
            when 'NEAREST_0.10' then
                round(p_price / greatest(0.10, power(10::numeric, -p_decimal_places)))
                    * greatest(0.10, power(10::numeric, -p_decimal_places))
            when 'UP' then
                ceil(p_price / greatest(0.10, power(10::numeric, -p_decimal_places)))
                    * greatest(0.10, power(10::numeric, -p_decimal_places))
            when 'DOWN' then
                floor(p_price / greatest(0.10, power(10::numeric, -p_decimal_places)))
                    * greatest(0.10, power(10::numeric, -p_decimal_places))
        end,
        p_decimal_places)
$$;
comment on function loyverse.round_price(numeric, text, integer) is
    'Price after a rounding rule, at the currency''s decimals. NONE: the currency''s decimals '
    '(half away from zero); NEAREST_0.05 / NEAREST_0.10: nearest multiple (ties away from zero); '
    'UP / DOWN: the next multiple of 0.10 at or above / at or below. A step finer than the '
    'currency allows becomes one unit of its last decimal (1 for 0-decimal currencies). '
    'Unknown rule: null.';
