-- Catalog changes heard from Loyverse (an item or variant deleted, an item renamed): always
-- audited per product; applied only where the restaurant's catalog_changes = 'apply'.
create function loyverse._apply_loyverse_deletion(
    p_inbox_id bigint, p_account_id bigint, p_item_id text, p_variant_id text, p_decision text
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_count integer;
begin
    create temporary table if not exists pg_temp.inbound_deleted (
        product_id uuid, restaurant_id uuid, apply boolean, price numeric) on commit drop;
    truncate pg_temp.inbound_deleted;
    insert into pg_temp.inbound_deleted
    select m.product_id, m.restaurant_id, s.catalog_changes = 'apply', p.price
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.account_id = p_account_id and m.loyverse_item_id = p_item_id
       and (p_variant_id is null or m.loyverse_variant_id = p_variant_id);
    get diagnostics v_count = row_count;
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                 decision, applied, our_price, details)
    select p_account_id, d.restaurant_id, p_inbox_id, d.product_id, coalesce(p_variant_id, p_item_id),
           p_decision, d.apply, d.price,
           jsonb_build_object('item_id', p_item_id, 'variant_id', p_variant_id,
                              'action', case when d.apply then 'product deactivated' else 'reported' end)
      from pg_temp.inbound_deleted d;
    -- Nothing can be written to a deleted item: its unsent changes are cancelled, and the
    -- mapping says why (a later re-import with the item back maps it again).
    update loyverse.loyverse_price_sync_queue q
       set status = 'cancelled', completed_at = now(), updated_at = now(),
           last_error = 'deleted in Loyverse'
      from pg_temp.inbound_deleted d
     where q.product_id = d.product_id and q.status = 'pending';
    update loyverse.loyverse_item_mappings m
       set needs_attention = true, attention_reason = 'deleted in Loyverse', updated_at = now()
      from pg_temp.inbound_deleted d
     where m.product_id = d.product_id;
    update public.products p
       set is_active = false, updated_at = now()
      from pg_temp.inbound_deleted d
     where p.id = d.product_id and d.apply and p.is_active;
    return v_count;
end;
$$;
comment on function loyverse._apply_loyverse_deletion(bigint, bigint, text, text, text) is
    'Internal: an item (variant null) or variant deleted in Loyverse: audit each mapped product, cancel its '
    'pending price changes, flag the mapping, and deactivate the product where catalog_changes = apply.';

create function loyverse._apply_loyverse_rename(
    p_inbox_id bigint, p_account_id bigint, p_item_id text, p_old_name text, p_new_name text
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into loyverse.loyverse_inbound_audit (account_id, restaurant_id, inbox_id, product_id, loyverse_id,
                                                 decision, applied, details)
    select p_account_id, m.restaurant_id, p_inbox_id, m.product_id, p_item_id, 'ITEM_RENAMED',
           s.catalog_changes = 'apply' and p.product_group_id is null,
           jsonb_build_object('old_name', p_old_name, 'new_name', p_new_name, 'product_name', p.name)
      from loyverse.loyverse_item_mappings m
      join public.products p on p.id = m.product_id
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.account_id = p_account_id and m.loyverse_item_id = p_item_id;
    -- One-variant items are one product named like the item; an item with variants is a
    -- product group, renamed through the import's object mapping.
    update public.products p
       set name = left(p_new_name, 200), updated_at = now()
      from loyverse.loyverse_item_mappings m
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
     where m.account_id = p_account_id and m.loyverse_item_id = p_item_id and p.id = m.product_id
       and s.catalog_changes = 'apply' and p.product_group_id is null and p.name is distinct from p_new_name;
    update public.product_groups g
       set name = p_new_name, updated_at = now()
      from loyverse.loyverse_object_mappings o
      join loyverse.loyverse_price_sync_settings s on s.restaurant_id = o.restaurant_id
     where o.kind = 'item' and o.loyverse_id = p_item_id and g.id = o.local_id
       and s.catalog_changes = 'apply' and g.name is distinct from p_new_name
       and exists (select 1 from loyverse.loyverse_restaurant_links l
                    where l.restaurant_id = o.restaurant_id and l.account_id = p_account_id);
end;
$$;
comment on function loyverse._apply_loyverse_rename(bigint, bigint, text, text, text) is
    'Internal: an item renamed in Loyverse: audit each mapped product; where catalog_changes = apply, rename '
    'the one-variant product or the item''s product group.';
