-- One item of an items.update delivery (or a poll page): older than what we applied, or
-- deleted before -> ignored; deleted now -> tombstoned and its products reported (or
-- deactivated); renamed -> reported (or renamed); each mapped store price -> _apply_loyverse_price.
create function loyverse._apply_loyverse_item(p_inbox_id bigint, p_account_id bigint, p_item jsonb,
                                              p_read_at timestamptz default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id text := p_item->>'id';
    v_updated timestamptz;
    v_deleted timestamptz;
    v_name text := p_item->>'item_name';
    v_obj loyverse.loyverse_inbound_objects;
    v_variant jsonb;
    v_vid text;
    v_vdeleted timestamptz;
    v_vupdated timestamptz;
    v_map record;
    v_entry jsonb;
    v_price numeric;
    v_outcome text;
    v_counts jsonb := '{}';
begin
    if v_id is null or jsonb_typeof(p_item) <> 'object' then
        return jsonb_build_object('malformed', 1);
    end if;
    v_updated := (p_item->>'updated_at')::timestamptz;
    v_deleted := (p_item->>'deleted_at')::timestamptz;

    select * into v_obj from loyverse.loyverse_inbound_objects o
     where o.account_id = p_account_id and o.kind = 'item' and o.loyverse_id = v_id
       for update;
    if v_obj.deleted_at is not null then
        insert into loyverse.loyverse_inbound_audit (account_id, inbox_id, loyverse_id, decision, details)
        values (p_account_id, p_inbox_id, v_id, 'TOMBSTONE_IGNORED',
                jsonb_build_object('deleted_at', v_obj.deleted_at, 'delivered_updated_at', v_updated));
        return jsonb_build_object('tombstoned', 1);
    end if;
    -- (A poll or refresh reads the current state: the version we have is applied again, so
    -- that what a refresh was asked for is decided; a webhook's same version is a redelivery.)
    if v_obj.updated_at is not null and v_updated is not null
       and (v_updated < v_obj.updated_at or (v_updated = v_obj.updated_at and p_read_at is null)) then
        -- A version we have (redelivery) or an older one (reordered): nothing new in it.
        if v_updated < v_obj.updated_at then
            insert into loyverse.loyverse_inbound_audit (account_id, inbox_id, loyverse_id, decision, details)
            values (p_account_id, p_inbox_id, v_id, 'STALE_IGNORED',
                    jsonb_build_object('applied_updated_at', v_obj.updated_at, 'delivered_updated_at', v_updated));
        end if;
        return jsonb_build_object('stale', 1);
    end if;
    insert into loyverse.loyverse_inbound_objects as o (account_id, kind, loyverse_id, updated_at, deleted_at, name)
    values (p_account_id, 'item', v_id, v_updated, v_deleted, v_name)
    on conflict (account_id, kind, loyverse_id) do update
       set updated_at = excluded.updated_at, deleted_at = excluded.deleted_at, name = excluded.name, seen_at = now();

    if v_deleted is not null then
        -- Tombstones for the item and its variants; its products are reported (or deactivated).
        insert into loyverse.loyverse_inbound_objects as o (account_id, kind, loyverse_id, updated_at, deleted_at)
        select p_account_id, 'variant', v->>'variant_id', v_updated, v_deleted
          from jsonb_array_elements(case when jsonb_typeof(p_item->'variants') = 'array'
                                         then p_item->'variants' else '[]' end) v
         where v->>'variant_id' is not null
        on conflict (account_id, kind, loyverse_id) do update set deleted_at = excluded.deleted_at, seen_at = now();
        perform loyverse._apply_loyverse_deletion(p_inbox_id, p_account_id, v_id, null, 'ITEM_DELETED');
        return jsonb_build_object('deleted', 1);
    end if;

    if not exists (select 1 from loyverse.loyverse_item_mappings m
                    where m.account_id = p_account_id and m.loyverse_item_id = v_id) then
        -- Not on our menu: reported once, when first heard of (`import run` brings it in).
        if v_obj.loyverse_id is null then
            insert into loyverse.loyverse_inbound_audit (account_id, inbox_id, loyverse_id, decision, details)
            values (p_account_id, p_inbox_id, v_id, 'ITEM_CREATED',
                    jsonb_build_object('item_name', v_name, 'hint', 'run `loyverse-sync import run` to add it'));
            return jsonb_build_object('created', 1);
        end if;
        return jsonb_build_object('unmapped', 1);
    end if;

    if v_obj.loyverse_id is not null and v_obj.name is distinct from v_name and v_name is not null then
        perform loyverse._apply_loyverse_rename(p_inbox_id, p_account_id, v_id, v_obj.name, v_name);
        v_counts := v_counts || jsonb_build_object('renamed', 1);
    end if;

    for v_variant in select * from jsonb_array_elements(case when jsonb_typeof(p_item->'variants') = 'array'
                                                             then p_item->'variants' else '[]' end) loop
        v_vid := v_variant->>'variant_id';
        continue when v_vid is null;
        v_vdeleted := (v_variant->>'deleted_at')::timestamptz;
        if v_vdeleted is not null then
            if not exists (select 1 from loyverse.loyverse_inbound_objects o
                            where o.account_id = p_account_id and o.kind = 'variant' and o.loyverse_id = v_vid
                              and o.deleted_at is not null) then
                insert into loyverse.loyverse_inbound_objects as o (account_id, kind, loyverse_id, updated_at, deleted_at)
                values (p_account_id, 'variant', v_vid, v_updated, v_vdeleted)
                on conflict (account_id, kind, loyverse_id) do update set deleted_at = excluded.deleted_at, seen_at = now();
                perform loyverse._apply_loyverse_deletion(p_inbox_id, p_account_id, v_id, v_vid, 'VARIANT_DELETED');
                v_counts := v_counts || jsonb_build_object('deleted', coalesce((v_counts->>'deleted')::int, 0) + 1);
            end if;
            continue;
        end if;
        -- When this variant last changed: an item's updated_at moves with any of its variants
        -- (our own push of a sibling too), so `latest` would date an older price of this one
        -- by a newer change of another. The item's stamp only when the variant has none.
        v_vupdated := coalesce((v_variant->>'updated_at')::timestamptz, v_updated);
        for v_map in select m.product_id, m.loyverse_store_id
                       from loyverse.loyverse_item_mappings m
                      where m.account_id = p_account_id and m.loyverse_variant_id = v_vid
                      order by m.product_id loop  -- a fixed lock order across concurrent applies
            select e into v_entry
              from jsonb_array_elements(case when jsonb_typeof(v_variant->'stores') = 'array'
                                             then v_variant->'stores' else '[]' end) e
             where e->>'store_id' = v_map.loyverse_store_id
             limit 1;
            continue when v_entry is null or coalesce(v_entry->>'pricing_type', 'FIXED') <> 'FIXED'
                          or jsonb_typeof(v_entry->'price') <> 'number';
            v_price := (v_entry->>'price')::numeric;
            continue when v_price < 0;
            v_outcome := loyverse._apply_loyverse_price(p_inbox_id, v_map.product_id, v_price, v_vupdated, p_read_at);
            v_counts := v_counts || jsonb_build_object(v_outcome, coalesce((v_counts->>v_outcome)::int, 0) + 1);
        end loop;
    end loop;
    return v_counts;
end;
$$;
comment on function loyverse._apply_loyverse_item(bigint, bigint, jsonb, timestamptz) is
    'Internal to apply_loyverse_inbox: apply one Loyverse item (ordering by updated_at, tombstones, '
    'rename, deletions, every mapped store price). Returns counts of outcomes.';
