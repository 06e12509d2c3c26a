-- Writes one batch of an import run's plan: products (created, duplicated, or updated only
-- where something differs), their item mappings and modifier links, all journaled; marks
-- the batch's plan rows done. The writes are marked as coming from Loyverse (origin).
create function loyverse.import_apply_batch(p_run_id bigint, p_batch_no integer)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
as $$
declare
    v_toast text := current_setting('default_toast_compression');
    v_run loyverse.loyverse_import_runs;
    v_store text;
    v_extra_cols text := '';
    v_extra_vals text := '';
    v_ids text[];
    v_changed text[];
    v_n integer;
    v_result jsonb;
    v_atomic boolean;
begin
    perform set_config('loyverse_sync.origin', 'loyverse', true);
    -- The journal's arrays of created rows are compressed with lz4 where the server has it
    -- (~2x faster than pglz here); the setting is put back before returning.
    if exists (select 1 from pg_catalog.pg_settings s
                where s.name = 'default_toast_compression' and 'lz4' = any (s.enumvals)) then
        perform set_config('default_toast_compression', 'lz4', true);
    end if;
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id;
    -- Atomic run, every row (p_batch_no null): import_plan wrote the plan rows done, with the
    -- outcome of the write, in this same transaction; only 'updated' is left to set here.
    v_atomic := p_batch_no is null and not v_run.dry_run
                and jsonb_typeof(v_run.options -> 'batch_size') is distinct from 'number';
    select l.store_id into v_store from loyverse.loyverse_restaurant_links l where l.restaurant_id = v_run.restaurant_id;

    -- Columns filled through --map (validated by import_field_map_problems before planning).
    select coalesce(string_agg(format(', %I', e.value), '' order by e.key), ''),
           coalesce(string_agg(format(', p.extra ->> %L', e.value), '' order by e.key), '')
      into v_extra_cols, v_extra_vals
      from jsonb_each_text(coalesce(v_run.options -> 'map', '{}')) e
     where e.value not in ('name', 'sku');

    drop table if exists pg_temp._lv_batch;
    create temp table _lv_batch on commit drop as
    select p.*, c.local_id as category_id,
           -- stock is written only by an import --with-inventory; otherwise it stays as it is
           case when coalesce(loyverse.jsonb_to_bool(v_run.options -> 'with_inventory'), false)
                then p.stock_quantity else pr.stock_quantity end as stock,
           -- the store's pricing type, for the mapping: import_plan flags a VARIABLE price (and
           -- only that) with this reason
           case when p.needs_attention and p.attention_reason like 'VARIABLE price%'
                then 'VARIABLE' else 'FIXED' end as pricing_type
      from loyverse.loyverse_import_plan p
      left join loyverse.loyverse_import_plan_objects c
        on c.run_id = p.run_id and c.kind = 'category' and c.loyverse_id = p.category_ref
      left join public.products pr on pr.id = p.product_id
     where p.run_id = p_run_id and (p_batch_no is null or p.batch_no = p_batch_no) and (v_atomic or not p.done);

    -- New products (create and duplicate): ids were chosen when planning. Rows this statement
    -- created (products, mappings, links) are journaled set-based: one journal row per
    -- 5,000 created rows (row_key '#<xid>.<batch>.<chunk>', action INSERT, after_image a JSON
    -- array of the rows' images), not one per row: each journal row costs an insert, two
    -- index entries and a foreign-key check (~0.25 s per 19k rows). import_undo expands them.
    -- The key is new (this transaction's id), so no ON CONFLICT is needed.
    execute format(
        'with ins as (
             insert into public.products (id, restaurant_id, category_id, product_group_id, name, sku, price,
                                          is_active, option1_value, option2_value, option3_value, stock_quantity%s)
             select p.product_id, $2, p.category_id, p.group_id, p.name, p.sku, p.price, p.is_active,
                    p.option1_value, p.option2_value, p.option3_value, p.stock%s
               from pg_temp._lv_batch p
              where p.decision in (''create'', ''duplicate'')
             %s
             returning *)
         insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
         select $1, ''products'', format(''#%%s.%%s.%%s'', pg_current_xact_id(), coalesce($3::text, ''all''), c.chunk),
                ''INSERT'', jsonb_agg(c.image)
           from (select to_jsonb(ins) as image, (row_number() over () - 1) / 5000 as chunk from ins) c
          group by c.chunk', v_extra_cols, v_extra_vals,
        -- an atomic run's ids are new (planned in this transaction): no speculative insert
        case when v_atomic then '' else 'on conflict (id) do nothing' end)
        using p_run_id, v_run.restaurant_id, p_batch_no;

    -- Updates: only rows where something differs (an unchanged menu writes nothing).
    execute format(
        'select array_agg(pr.id::text)
           from public.products pr join pg_temp._lv_batch p on p.product_id = pr.id
          where p.decision = ''update''
            and (pr.name, pr.sku, pr.price, pr.is_active, pr.category_id, pr.product_group_id,
                 pr.option1_value, pr.option2_value, pr.option3_value, pr.stock_quantity%s)
                is distinct from
                (p.name, p.sku, p.price, p.is_active, coalesce(p.category_id, pr.category_id),
                 coalesce(p.group_id, pr.product_group_id), p.option1_value, p.option2_value, p.option3_value,
                 p.stock%s)',
        replace(v_extra_cols, ', ', ', pr.'), v_extra_vals)
        into v_changed;
    perform loyverse.import_journal_before(p_run_id, 'products', v_changed);
    execute format(
        'update public.products pr
            set (name, sku, price, is_active, category_id, product_group_id, option1_value, option2_value,
                 option3_value, stock_quantity%s, updated_at)
              = (p.name, p.sku, p.price, p.is_active, coalesce(p.category_id, pr.category_id),
                 coalesce(p.group_id, pr.product_group_id), p.option1_value, p.option2_value,
                 p.option3_value, p.stock%s, now())
           from pg_temp._lv_batch p, unnest($1::text[]) k(id)
          where p.product_id = pr.id and p.decision = ''update'' and pr.id::text = k.id',
        v_extra_cols, v_extra_vals)
        using v_changed;

    -- Item mappings: insert new ones, update those that differ.
    select array_agg(m.id::text) into v_ids
      from loyverse.loyverse_item_mappings m
      join _lv_batch p on m.restaurant_id = v_run.restaurant_id and m.loyverse_variant_id = p.variant_id
     where p.decision in ('create', 'update', 'duplicate')
       and (m.product_id, m.account_id, m.loyverse_item_id, m.loyverse_store_id, m.last_synced_price,
            m.needs_attention, m.attention_reason, m.price_factor, m.loyverse_pricing_type)
           is distinct from
           (p.product_id, v_run.account_id, p.item_id, v_store, round(p.loyverse_price, 2),
            p.needs_attention, p.attention_reason, p.price_factor, p.pricing_type);
    perform loyverse.import_journal_before(p_run_id, 'loyverse_item_mappings', v_ids);
    with up as (
        insert into loyverse.loyverse_item_mappings as m
            (product_id, restaurant_id, account_id, loyverse_item_id, loyverse_variant_id, loyverse_store_id,
             last_synced_price, last_synced_at, sync_direction, needs_attention, attention_reason, import_run_id,
             price_factor, loyverse_pricing_type)
        select p.product_id, v_run.restaurant_id, v_run.account_id, p.item_id, p.variant_id, v_store,
               round(p.loyverse_price, 2), now(), 'FROM_LOYVERSE', p.needs_attention, p.attention_reason, p_run_id,
               p.price_factor, p.pricing_type
          from _lv_batch p
         where p.decision in ('create', 'update', 'duplicate')
        on conflict (restaurant_id, loyverse_variant_id) do update
           set product_id = excluded.product_id, account_id = excluded.account_id,
               loyverse_item_id = excluded.loyverse_item_id, loyverse_store_id = excluded.loyverse_store_id,
               last_synced_price = excluded.last_synced_price, last_synced_at = excluded.last_synced_at,
               sync_direction = 'FROM_LOYVERSE', needs_attention = excluded.needs_attention,
               attention_reason = excluded.attention_reason, import_run_id = excluded.import_run_id,
               price_factor = excluded.price_factor, loyverse_pricing_type = excluded.loyverse_pricing_type,
               updated_at = now()
         where (m.product_id, m.account_id, m.loyverse_item_id, m.loyverse_store_id, m.last_synced_price,
                m.needs_attention, m.attention_reason, m.price_factor, m.loyverse_pricing_type)
               is distinct from
               (excluded.product_id, excluded.account_id, excluded.loyverse_item_id, excluded.loyverse_store_id,
                excluded.last_synced_price, excluded.needs_attention, excluded.attention_reason, excluded.price_factor,
                excluded.loyverse_pricing_type)
        returning m.id, m.product_id, (m.xmax = 0) as inserted, to_jsonb(m) as image)
    , j as (
        insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
        select p_run_id, 'loyverse_item_mappings',
               format('#%s.%s.%s', pg_current_xact_id(), coalesce(p_batch_no::text, 'all'), c.chunk), 'INSERT',
               jsonb_agg(c.image)
          from (select up.image, (row_number() over () - 1) / 5000 as chunk from up where up.inserted) c
         group by c.chunk)
    select array_agg(up.product_id::text) || coalesce(v_changed, '{}') into v_changed from up;

    -- Modifier links (only new ones are written).
    with ins as (
        insert into public.product_modifier_groups (product_id, modifier_group_id)
        select distinct p.product_id, o.local_id
          from _lv_batch p
          cross join lateral unnest(p.modifier_ids) mid
          join loyverse.loyverse_import_plan_objects o
            on o.run_id = p.run_id and o.kind = 'modifier' and o.loyverse_id = mid
         where p.decision in ('create', 'update', 'duplicate')
        on conflict do nothing
        returning *)
    insert into loyverse.loyverse_import_journal (run_id, table_name, row_key, action, after_image)
    select p_run_id, 'product_modifier_groups',
           format('#%s.%s.%s', pg_current_xact_id(), coalesce(p_batch_no::text, 'all'), c.chunk), 'INSERT',
           jsonb_agg(c.image)
      from (select to_jsonb(ins) as image, (row_number() over () - 1) / 5000 as chunk from ins) c
     group by c.chunk;  -- new links only, journaled set-based as above

    -- Links to Loyverse modifiers the item no longer has (or that left the store) are removed
    -- (journaled, so undo puts them back); links to our own modifier groups stay.
    select array_agg(l.product_id::text || ':' || l.modifier_group_id::text) into v_ids
      from public.product_modifier_groups l
      join _lv_batch p on p.product_id = l.product_id
      join loyverse.loyverse_object_mappings om
        on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier' and om.local_id = l.modifier_group_id
     where p.decision in ('create', 'update', 'duplicate') and not (om.loyverse_id = any (p.modifier_ids));
    if v_ids is not null then
        perform loyverse.import_journal_before(p_run_id, 'product_modifier_groups', v_ids, 'DELETE');
        delete from public.product_modifier_groups l
         using unnest(v_ids) k(key)
         where l.product_id::text || ':' || l.modifier_group_id::text = k.key;
        select array_agg(distinct split_part(k.key, ':', 1)) || coalesce(v_changed, '{}') into v_changed
          from unnest(v_ids) k(key);
    end if;

    if not v_atomic then
      update loyverse.loyverse_import_plan p
       set done = true,
           outcome = case p.decision when 'create' then 'created' when 'duplicate' then 'duplicated'
                                     when 'skip' then 'skipped' when 'fail' then 'failed'
                                     when 'update' then 'unchanged' end
      from _lv_batch b
     where p.run_id = p_run_id and p.row_no = b.row_no and p.decision is not null;
    end if;
    update loyverse.loyverse_import_plan p
       set outcome = 'updated'
      from (select distinct unnest(v_changed) as id) c
     where p.run_id = p_run_id and p.decision = 'update' and p.outcome = 'unchanged'
       and p.product_id::text = c.id;

    select jsonb_build_object(
               'rows', count(*),
               'created', count(*) filter (where p.outcome = 'created'),
               'updated', count(*) filter (where p.outcome = 'updated'),
               'unchanged', count(*) filter (where p.outcome = 'unchanged'),
               'skipped', count(*) filter (where p.outcome = 'skipped'),
               'duplicated', count(*) filter (where p.outcome = 'duplicated'),
               'failed', count(*) filter (where p.outcome = 'failed'))
      into v_result
      from loyverse.loyverse_import_plan p join _lv_batch b on b.row_no = p.row_no
     where p.run_id = p_run_id;
    perform set_config('default_toast_compression', v_toast, true);
    return v_result;
end;
$$;

comment on function loyverse.import_apply_batch(bigint, integer) is
    'Write batch p_batch_no (null: every remaining row; in an atomic run, every row: import_plan wrote '
    'them done with their outcome) of an import run''s plan; returns counts by outcome.';
