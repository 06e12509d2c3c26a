-- Reconciliation, step two (step one is the batched read of Loyverse): compare every mapped
-- product of a restaurant with the items read and replace the restaurant's drift rows.
create function loyverse.record_price_drift(p_restaurant_id uuid, p_items jsonb)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    perform loyverse._price_sync_restaurant(p_restaurant_id);  -- raises for an unknown restaurant
    if p_items is null or jsonb_typeof(p_items) <> 'array' then
        raise exception 'items: expected a json array of Loyverse items'
            using errcode = 'invalid_parameter_value', column = 'items';
    end if;
    delete from loyverse.loyverse_price_drift d where d.restaurant_id = p_restaurant_id;
    with items as (
        select i->>'id' as item_id, i from jsonb_array_elements(p_items) i
         where i->>'deleted_at' is null
    ), observed as (
        select m.product_id, m.account_id, m.loyverse_item_id, m.loyverse_variant_id, p.is_active,
               loyverse.price_to_send(p.price, s.price_rounding_rule, a.decimal_places, m.price_factor) as ours,
               vv.v as variant, ee.e as entry
          from loyverse.loyverse_item_mappings m
          join public.products p on p.id = m.product_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
          join loyverse.loyverse_accounts a on a.id = m.account_id
          left join items it on it.item_id = m.loyverse_item_id
          left join lateral (select v from jsonb_array_elements(it.i->'variants') v
                              where v->>'variant_id' = m.loyverse_variant_id and v->>'deleted_at' is null
                              limit 1) vv on true
          left join lateral (select e from jsonb_array_elements(vv.v->'stores') e
                              where e->>'store_id' = m.loyverse_store_id limit 1) ee on true
         where m.restaurant_id = p_restaurant_id
           -- a VARIABLE price is entered at the counter: there is no price of ours to compare
           and not (m.needs_attention and m.attention_reason like 'VARIABLE price%')
    ), drift as (
        select o.*, k.kind
          from observed o
          cross join lateral (values
              ('missing', o.variant is null),
              ('price', o.variant is not null and coalesce(o.entry->>'pricing_type', 'FIXED') = 'FIXED'
                        and (jsonb_typeof(o.entry->'price') is distinct from 'number'
                             or (o.entry->>'price')::numeric <> o.ours)),
              ('availability', o.variant is not null
                               and coalesce((o.entry->>'available_for_sale')::boolean, true) <> o.is_active)
          ) k(kind, drifted)
         where k.drifted
    ), inserted as (
        insert into loyverse.loyverse_price_drift (restaurant_id, product_id, account_id, loyverse_item_id,
                                                   loyverse_variant_id, kind, our_price, loyverse_price,
                                                   our_available, loyverse_available)
        select p_restaurant_id, d.product_id, d.account_id, d.loyverse_item_id, d.loyverse_variant_id, d.kind,
               d.ours, case when jsonb_typeof(d.entry->'price') = 'number' then (d.entry->>'price')::numeric end,
               d.is_active, (d.entry->>'available_for_sale')::boolean
          from drift d
        returning *
    )
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, product_id, loyverse_id, decision,
                                                 our_price, loyverse_price, details)
    select i.account_id, i.restaurant_id, i.product_id, i.loyverse_variant_id, 'DRIFT_FOUND', i.our_price,
           i.loyverse_price, jsonb_build_object('kind', i.kind, 'our_available', i.our_available,
                                                'loyverse_available', i.loyverse_available)
      from inserted i;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;
comment on function loyverse.record_price_drift(uuid, jsonb) is
    'Reconciliation: compare the restaurant''s mapped products with the Loyverse items given (read in bulk) '
    'and replace its rows of loyverse.price_drift; returns the drift rows found (each audited DRIFT_FOUND).';
