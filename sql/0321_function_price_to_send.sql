-- What Loyverse should hold for one of our prices: the restaurant's rounding rule applied to
-- our price (what the customer pays here), divided by the mapping's price factor (the menu
-- import's tax conversion, e.g. 1.05 when Loyverse adds a 5 % tax on top of its price; 1 when
-- none), at the currency's decimals. No SET search_path, so it inlines (see round_price).
create function loyverse.price_to_send(p_price numeric, p_rule text, p_decimal_places integer, p_price_factor numeric)
returns numeric
language sql
immutable
parallel safe
as $$
    select pg_catalog.round(
        loyverse.round_price(p_price, p_rule, p_decimal_places)
            operator(pg_catalog./) coalesce(nullif(p_price_factor, 0::numeric), 1::numeric),
        p_decimal_places)
$$;
comment on function loyverse.price_to_send(numeric, text, integer, numeric) is
    'The price to write to Loyverse for our price: round_price(price, rule, decimals) / price_factor, at the '
    'currency''s decimals. Example: 4.83 with NONE, 2 decimals and factor 1.05 (an ADDED 5 % tax) -> 4.60.';
