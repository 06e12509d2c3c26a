-- Builds an import run's plan from its snapshot, set-based: validation, pricing for the
-- linked store, conflict detection (mapping, then SKU, then name), resolution, and the
-- fidelity report. Writes only the run's plan tables; the catalogue is untouched. Tells how far
-- it is while it runs (a NOTICE per 1,000 items and per step: loyverse._import_plan_progress).
create function loyverse.import_plan(p_run_id bigint)
returns jsonb
language plpgsql
set search_path = ''
set jit = off
set enable_nestloop = off
set work_mem = '64MB'
set enable_memoize = off
as $$
declare
    v_run loyverse.loyverse_import_runs;
    v_opts jsonb;
    v_store text;
    v_dp integer;
    v_incl_tax boolean;
    v_conflict text;
    v_decisions jsonb;
    v_name_field text;
    v_sku_field text;
    v_extra jsonb;
    v_batch integer;
    v_unknown text;
    v_sel_items text[];
    v_sel_cats text[];
    v_excl text[];
    v_selecting boolean;
    v_inventory boolean;
    v_atomic boolean;
    -- progress (loyverse._import_plan_progress): items planned, then the steps after them
    v_items bigint;
    v_done bigint;
    v_after integer;
    v_upto integer;
    v_rows integer := 0;
    v_n integer;
    v_steps integer;
    v_chunk constant integer := 4000;  -- plan rows written per statement at the end
begin
    select * into v_run from loyverse.loyverse_import_runs r where r.id = p_run_id;
    if not found then
        raise exception 'import_plan: no import run %', p_run_id using errcode = 'no_data_found';
    end if;
    if v_run.snapshot_id is null then
        raise exception 'import_plan: run % has no snapshot', p_run_id using errcode = 'invalid_parameter_value';
    end if;
    v_opts := v_run.options;
    -- An atomic run (no --batch-size, not a dry run) plans and writes in one transaction.
    v_atomic := not v_run.dry_run and jsonb_typeof(v_opts -> 'batch_size') is distinct from 'number';
    select l.store_id into v_store
      from loyverse.loyverse_restaurant_links l where l.restaurant_id = v_run.restaurant_id;
    if v_store is null then
        raise exception 'restaurant % is not linked to a Loyverse store', v_run.restaurant_id
            using errcode = 'invalid_parameter_value';
    end if;
    -- The currency's decimals: what the snapshot's merchant says, else the account row.
    select coalesce(case when jsonb_typeof(s.merchant #> '{currency,decimal_places}') = 'number'
                         then (s.merchant #>> '{currency,decimal_places}')::numeric::integer end,
                    a.decimal_places, 2)
      into v_dp
      from loyverse.loyverse_snapshots s
      left join loyverse.loyverse_accounts a on a.id = s.account_id
     where s.id = v_run.snapshot_id;
    v_dp := least(greatest(coalesce(v_dp, 2), 0), 2);  -- products.price is numeric(12,2)
    select coalesce((select st.prices_include_tax from loyverse.loyverse_price_sync_settings st
                      where st.restaurant_id = v_run.restaurant_id), true)
      into v_incl_tax;
    v_conflict := coalesce(v_opts ->> 'conflict', 'skip');
    v_decisions := case when jsonb_typeof(v_opts -> 'decisions') = 'object' then v_opts -> 'decisions' else '{}' end;
    v_name_field := coalesce((select e.key from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                               where e.value = 'name' limit 1), 'item_name');
    v_sku_field := coalesce((select e.key from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                              where e.value = 'sku' limit 1), 'sku');
    v_extra := coalesce((select jsonb_object_agg(e.value, e.key) from jsonb_each_text(coalesce(v_opts -> 'map', '{}')) e
                          where e.value not in ('name', 'sku')), '{}');
    v_batch := greatest(coalesce((v_opts ->> 'batch_size')::integer, 500), 1);
    v_unknown := coalesce(v_opts ->> 'unknown_category', 'fallback');
    v_inventory := coalesce(loyverse.jsonb_to_bool(v_opts -> 'with_inventory'), false);
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_sel_items
      from jsonb_array_elements_text(coalesce(v_opts -> 'items', '[]')) x;
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_sel_cats
      from jsonb_array_elements_text(coalesce(v_opts -> 'categories', '[]')) x;
    select coalesce(array_agg(loyverse.normalize_name(x)), '{}') into v_excl
      from jsonb_array_elements_text(coalesce(v_opts -> 'exclude', '[]')) x;
    v_selecting := cardinality(v_sel_items) + cardinality(v_sel_cats) + cardinality(v_excl) > 0;

    delete from loyverse.loyverse_import_plan p where p.run_id = p_run_id;
    delete from loyverse.loyverse_import_plan_objects p where p.run_id = p_run_id;
    delete from loyverse.loyverse_import_issues i where i.run_id = p_run_id;

    -- Valid, live categories, taxes and modifiers of the snapshot.
    drop table if exists pg_temp._lv_cats, pg_temp._lv_taxes, pg_temp._lv_mods, pg_temp._lv_items, pg_temp._lv_rows,
        pg_temp._lv_stock, pg_temp._lv_plan;
    create temp table _lv_cats on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, btrim(o.payload ->> 'name') as name, o.seq
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'category' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'name') = 'string' and btrim(o.payload ->> 'name') <> ''
       and length(o.payload ->> 'name') <= 64
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
     order by o.loyverse_id, o.seq;

    create temp table _lv_taxes on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, o.payload ->> 'type' as type,
           (o.payload ->> 'rate')::numeric as rate
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'tax' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'rate') = 'number'
       and (o.payload ->> 'rate')::numeric between 0 and 1000  -- a hostile rate is ignored (unknown_tax)
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
       and (jsonb_typeof(o.payload -> 'stores') is distinct from 'array' or o.payload -> 'stores' ? v_store)
     order by o.loyverse_id, o.seq;

    create temp table _lv_mods on commit drop as
    select distinct on (o.loyverse_id) o.loyverse_id as id, btrim(o.payload ->> 'name') as name, o.payload as m,
           (jsonb_typeof(o.payload -> 'stores') is distinct from 'array' or o.payload -> 'stores' ? v_store) as in_store
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'modifier' and o.loyverse_id is not null
       and jsonb_typeof(o.payload -> 'name') = 'string' and btrim(o.payload ->> 'name') <> ''
       and coalesce(jsonb_typeof(o.payload -> 'deleted_at'), 'null') = 'null'
     order by o.loyverse_id, o.seq;

    -- Stock levels of the linked store (--with-inventory); negative stock is allowed.
    create temp table _lv_stock on commit drop as
    select distinct on (o.payload ->> 'variant_id') o.payload ->> 'variant_id' as variant_id,
           case when jsonb_typeof(o.payload -> 'in_stock') = 'number'
                     and (o.payload ->> 'in_stock')::numeric between -999999999 and 999999999
                then round((o.payload ->> 'in_stock')::numeric, 3) end as qty,
           o.payload -> 'in_stock' as raw
      from loyverse.loyverse_snapshot_objects o
     where v_inventory and o.snapshot_id = v_run.snapshot_id and o.kind = 'inventory'
       and o.payload ->> 'store_id' = v_store and jsonb_typeof(o.payload -> 'variant_id') = 'string'
     order by o.payload ->> 'variant_id', o.seq desc;

    -- Items, deduplicated by id (the first copy wins), then the selection.
    create temp table _lv_items on commit drop as
    -- i is the item without its variants (small: read many times without de-TOASTing the
    -- whole payload again), variants the array as sent (SQL null when the key is absent).
    -- (deduplicated by an anti join on the keys: sorting whole payloads spilled to disk)
    select o.seq, o.loyverse_id as item_id,
           case when jsonb_typeof(o.payload) = 'object' then o.payload - 'variants' else o.payload end as i,
           o.payload -> 'variants' as variants
      from loyverse.loyverse_snapshot_objects o
     where o.snapshot_id = v_run.snapshot_id and o.kind = 'item'
       and not exists (select 1 from loyverse.loyverse_snapshot_objects o2
                        where o2.snapshot_id = v_run.snapshot_id and o2.kind = 'item'
                          and o2.loyverse_id = o.loyverse_id and o2.seq < o.seq);

    analyze _lv_items (item_id);

    if v_selecting then
        delete from _lv_items it
         where not (
                 (cardinality(v_sel_items) = 0 and cardinality(v_sel_cats) = 0)
                 or loyverse.normalize_name(it.item_id) = any (v_sel_items)
                 or loyverse.normalize_name(it.i ->> 'item_name') = any (v_sel_items)
                 or loyverse.normalize_name(it.i ->> 'category_id') = any (v_sel_cats)
                 or exists (select 1 from _lv_cats c where c.id = it.i ->> 'category_id'
                             and loyverse.normalize_name(c.name) = any (v_sel_cats)))
            or loyverse.normalize_name(it.item_id) = any (v_excl)
            or loyverse.normalize_name(it.i ->> 'item_name') = any (v_excl)
            or loyverse.normalize_name(it.i ->> 'category_id') = any (v_excl)
            or exists (select 1 from _lv_cats c where c.id = it.i ->> 'category_id'
                        and loyverse.normalize_name(c.name) = any (v_excl));
    end if;

    v_items := (select count(*) from _lv_items);
    perform loyverse._import_plan_progress(p_run_id, 'items', 0, v_items);

    -- One row per variant (an item without variants yields one row that fails validation),
    -- built 1,000 items at a time so that the caller hears of progress while it plans (the
    -- progress notices; row_no continues from the chunk before).
    create temp table _lv_rows (
        row_no integer, item_seq integer, item_id text, variant_id text, base_name text, sku text,
        pricing_type text, raw_price numeric, added_rate numeric, included_rate numeric, cat_id text,
        modifier_ids text[], option1_value text, option2_value text, option3_value text,
        available_for_sale boolean, extra jsonb, adj_price numeric, price_factor numeric, name text,
        cat_known boolean, deleted boolean, errors text[]
    ) on commit drop;
    create index on _lv_items (seq);
    v_after := -1;
    v_done := 0;
    while v_done < v_items loop  -- (every chunk has at least one item)
        v_upto := (select it.seq from _lv_items it where it.seq > v_after order by it.seq offset 999 limit 1);
        v_upto := coalesce(v_upto, 2147483647);
        insert into _lv_rows
        with it as materialized (
            -- per item, not per variant: the tax sums and the in-store modifiers it links (read
            -- from i, which is small and stored uncompressed; the snapshot payload is compressed
            -- and every access to it decompresses it again)
            select it.*, tx.added_rate, tx.included_rate,
                   coalesce((select array_agg(m.id order by m.id)
                               from _lv_mods m
                              where m.in_store and jsonb_typeof(it.i -> 'modifier_ids') = 'array'
                                and it.i -> 'modifier_ids' ? m.id), '{}') as mod_ids
              from _lv_items it
              cross join lateral (
                     select coalesce(sum(t.rate) filter (where t.type = 'ADDED'), 0) as added_rate,
                            coalesce(sum(t.rate) filter (where t.type = 'INCLUDED'), 0) as included_rate
                       from _lv_taxes t
                      where jsonb_typeof(it.i -> 'tax_ids') = 'array' and it.i -> 'tax_ids' ? t.id) tx
             where it.seq > v_after and it.seq <= v_upto
        ),
        v as (
            select it.seq as item_seq, it.item_id, it.i, jsonb_typeof(it.variants) as variants_type, vv.ord, vv.v,
                   it.added_rate, it.included_rate, it.mod_ids,
                   case when jsonb_typeof(it.variants) = 'array' then jsonb_array_length(it.variants) else 0 end as n_variants,
                   case when jsonb_typeof(vv.v -> 'variant_id') = 'string' and btrim(vv.v ->> 'variant_id') <> ''
                        then vv.v ->> 'variant_id' end as variant_id,
                   se.e as se,
                   case when jsonb_typeof(coalesce(vv.v -> v_name_field, it.i -> v_name_field)) in ('string', 'number')
                        then btrim(coalesce(vv.v -> v_name_field, it.i -> v_name_field) #>> '{}') end as base_name,
                   case when jsonb_typeof(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field)) in ('string', 'number')
                        then nullif(btrim(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field) #>> '{}'), '') end as sku,
                   coalesce(jsonb_typeof(coalesce(vv.v -> v_sku_field, it.i -> v_sku_field)), 'null') as sku_type
              from it
              cross join lateral jsonb_array_elements(
                     case when jsonb_typeof(it.variants) = 'array' and jsonb_array_length(it.variants) > 0
                          then it.variants else '[null]'::jsonb end) with ordinality vv(v, ord)
              left join lateral (
                     select e from jsonb_array_elements(case when jsonb_typeof(vv.v -> 'stores') = 'array'
                                                             then vv.v -> 'stores' else '[]'::jsonb end) e
                      where e ->> 'store_id' = v_store limit 1) se on true
        ),
        p as (
            select v.*,
                   case when v.se is not null
                        then coalesce(v.se ->> 'pricing_type', v.v ->> 'default_pricing_type', 'FIXED')
                        when jsonb_typeof(v.v -> 'default_price') = 'number'
                        then coalesce(v.v ->> 'default_pricing_type', 'FIXED')
                        else coalesce(v.v ->> 'default_pricing_type', 'VARIABLE') end as pricing_type
              from v
        ),
        q as (
            select p.*,
                   case when p.pricing_type = 'FIXED' then
                        case when p.se is not null and coalesce(jsonb_typeof(p.se -> 'price'), 'null') <> 'null'
                             then p.se -> 'price' else p.v -> 'default_price' end end as price_json,
                   case when jsonb_typeof(p.i -> 'category_id') = 'string' then p.i ->> 'category_id' end as cat_id
              from p
        ),
        r as materialized (
            select q.*,
                   case when jsonb_typeof(q.price_json) = 'number' then (q.price_json #>> '{}')::numeric end as raw_price
              from q
        )
        -- (narrow: the item and variant JSON is not copied into the table, only what is used later)
        select v_rows + row_number() over (order by r.item_seq, r.ord)::integer as row_no,
               r.item_seq, r.item_id, r.variant_id, r.base_name, r.sku, r.pricing_type, r.raw_price,
               r.added_rate, r.included_rate, r.cat_id, r.mod_ids as modifier_ids,
               r.v ->> 'option1_value' as option1_value, r.v ->> 'option2_value' as option2_value,
               r.v ->> 'option3_value' as option3_value,
               loyverse.jsonb_to_bool(r.se -> 'available_for_sale') as available_for_sale,
               case when v_extra = '{}' then '{}'::jsonb else coalesce((select jsonb_object_agg(x.key,
                                  case when jsonb_typeof(coalesce(r.v -> (x.value #>> '{}'), r.i -> (x.value #>> '{}'))) in ('string', 'number', 'boolean')
                                       then coalesce(r.v -> (x.value #>> '{}'), r.i -> (x.value #>> '{}')) #>> '{}' end)
                           from jsonb_each(v_extra) x), '{}') end as extra,
               case when r.raw_price is null then null
                    when v_incl_tax and r.added_rate > 0 then r.raw_price * (1 + r.added_rate / 100)
                    when not v_incl_tax and r.included_rate > 0 then r.raw_price / (1 + r.included_rate / 100)
                    else r.raw_price end as adj_price,
               -- our price / Loyverse price (price sync sends our price / price_factor back)
               round(case when v_incl_tax and r.added_rate > 0 then 1 + r.added_rate / 100
                          when not v_incl_tax and r.included_rate > 0 then 1 / (1 + r.included_rate / 100)
                          else 1 end, 6) as price_factor,
               case when r.n_variants > 1 or coalesce(r.v ->> 'option1_value', r.v ->> 'option2_value', r.v ->> 'option3_value') is not null
                    then r.base_name || coalesce(' (' || nullif(concat_ws(' / ', r.v ->> 'option1_value', r.v ->> 'option2_value', r.v ->> 'option3_value'), '') || ')', '')
                    else r.base_name end as name,
               exists (select 1 from _lv_cats c where c.id = r.cat_id) as cat_known,
               (coalesce(jsonb_typeof(r.i -> 'deleted_at'), 'null') <> 'null'
                or coalesce(jsonb_typeof(r.v -> 'deleted_at'), 'null') <> 'null') as deleted,
               array_remove(array[
                 case when r.item_id is null then 'the item has no id' end,
                 case when r.variants_type <> 'array' then 'variants is not a list'
                      when r.n_variants = 0 then 'the item has no variants' end,
                 case when r.n_variants > 0 and r.variant_id is null then 'the variant has no variant_id' end,
                 case when r.base_name is null then format('%s is missing or not text', v_name_field)
                      when r.base_name = '' then format('%s is blank', v_name_field)
                      when length(r.base_name) > 64 then format('%s is longer than 64 characters (%s)', v_name_field, length(r.base_name)) end,
                 case when r.sku_type not in ('string', 'number', 'null') then format('%s is not text', v_sku_field)
                      when length(r.sku) > 40 then format('%s is longer than 40 characters', v_sku_field) end,
                 case when r.pricing_type not in ('FIXED', 'VARIABLE') then format('unknown pricing type %s', left(r.pricing_type, 40)) end,
                 case when r.price_json is not null and jsonb_typeof(r.price_json) not in ('number', 'null')
                      then format('price is not a number: %s', left(r.price_json::text, 40))
                      when r.raw_price < 0 then format('negative price %s', r.raw_price)
                      when r.raw_price * (1 + greatest(r.added_rate, 0) / 100) >= 100000000 then format('price %s is too large (at most 99999999.99)', r.raw_price) end,
                 case when r.i ? 'category_id' and coalesce(jsonb_typeof(r.i -> 'category_id'), 'null') not in ('string', 'null')
                      then 'category_id is not text'
                      when r.cat_id is not null and v_unknown = 'reject'
                           and not exists (select 1 from _lv_cats c where c.id = r.cat_id)
                      then format('unknown category %s', left(r.cat_id, 64)) end,
                 case when coalesce(jsonb_typeof(r.i -> 'modifier_ids'), 'null') not in ('array', 'null')
                      then 'modifier_ids is not a list' end,
                 case when jsonb_typeof(r.i -> 'option1_name') = 'string' and r.n_variants > 0
                           and coalesce(jsonb_typeof(r.v -> 'option1_value'), 'null') = 'null' then 'option1_value is missing' end,
                 case when jsonb_typeof(r.i -> 'option2_name') = 'string' and r.n_variants > 0
                           and coalesce(jsonb_typeof(r.v -> 'option2_value'), 'null') = 'null' then 'option2_value is missing' end,
                 case when jsonb_typeof(r.i -> 'option3_name') = 'string' and r.n_variants > 0
                           and coalesce(jsonb_typeof(r.v -> 'option3_value'), 'null') = 'null' then 'option3_value is missing' end
               ]::text[], null) as errors
          from r;
        get diagnostics v_n = row_count;
        v_rows := v_rows + v_n;
        v_done := v_done + (select count(*) from _lv_items it where it.seq > v_after and it.seq <= v_upto);
        perform loyverse._import_plan_progress(p_run_id, 'items', v_done, v_items);
        v_after := v_upto;
    end loop;
    analyze _lv_rows (row_no, variant_id, sku, item_id);
    v_steps := 9 + (v_rows + v_chunk - 1) / v_chunk;

    -- Duplicate SKUs inside Loyverse: the first variant keeps it, the others are rejected.
    update _lv_rows x
       set errors = x.errors || format('SKU %s is also used by variant %s in Loyverse', x.sku, d.first_variant)
      from (select r.row_no,
                   first_value(r.variant_id) over w as first_variant,
                   row_number() over w as n
              from _lv_rows r
             where r.sku is not null and cardinality(r.errors) = 0 and not r.deleted
            window w as (partition by r.sku order by r.row_no)) d
     where d.row_no = x.row_no and d.n > 1;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 1, v_steps);

    -- The plan is built in a temp table (no WAL, no shared indexes to maintain while the
    -- passes below refine it) and inserted into loyverse_import_plan once, at the end.
    create temp table _lv_plan (like loyverse.loyverse_import_plan including defaults) on commit drop;
    -- One INSERT: values, conflict detection (in order: an existing mapping, the same SKU, the
    -- same name) and the decision, so the plan needs no UPDATE pass for them.
    -- Name matches ignore products already linked to another Loyverse variant (a menu may
    -- repeat a name legitimately); the oldest product of that name wins.
    insert into _lv_plan
        (run_id, row_no, item_id, variant_id, item_seq, batch_no, item_name, name, sku, price, loyverse_price,
         price_factor, stock_quantity, is_active, option1_value, option2_value, option3_value, category_ref, category_fallback, modifier_ids,
         extra, errors, needs_attention, attention_reason, match_rule, matched_product_id, matched_name, matched_variant_id,
         decision, decision_reason, product_id)
    select p_run_id, r.row_no, r.item_id, r.variant_id, r.item_seq,
           (dense_rank() over (order by r.item_seq) - 1)::integer / v_batch,
           r.base_name, r.name, r.sku,
           case when cardinality(r.errors) = 0 then round(coalesce(r.adj_price, 0), v_dp) end,
           r.raw_price,
           r.price_factor,
           (select s.qty from _lv_stock s where s.variant_id = r.variant_id),
           coalesce(r.available_for_sale, true),
           r.option1_value, r.option2_value, r.option3_value,
           case when r.cat_known then r.cat_id when r.cat_id is not null then '(fallback)' end,
           r.cat_id is not null and not r.cat_known,
           r.modifier_ids,
           r.extra,
           r.errors,
           r.pricing_type = 'VARIABLE',
           case when r.pricing_type = 'VARIABLE' then 'VARIABLE price in Loyverse: imported as 0' end,
           k.match_rule, k.matched_product_id, pn.name, k.matched_variant_id,
           case when cardinality(r.errors) > 0 then 'fail' when r.deleted then 'skip' else d.decision end,
           case when cardinality(r.errors) > 0 then array_to_string(r.errors, '; ') when r.deleted then 'deleted in Loyverse'
                else d.reason end,
           -- targets: an update writes the matched product, a create or duplicate a new id chosen now
           case when cardinality(r.errors) > 0 or r.deleted then null
                when d.decision = 'update' then k.matched_product_id
                when d.decision in ('create', 'duplicate') then gen_random_uuid() end
      from _lv_rows r
      left join loyverse.loyverse_item_mappings m
             on cardinality(r.errors) = 0 and not r.deleted
            and m.restaurant_id = v_run.restaurant_id and m.loyverse_variant_id = r.variant_id
      left join public.products ps
             on m.id is null and cardinality(r.errors) = 0 and not r.deleted
            and ps.restaurant_id = v_run.restaurant_id and ps.sku = r.sku
      left join loyverse.loyverse_item_mappings ms on ms.product_id = ps.id
      left join (select distinct on (loyverse.normalize_name(pr.name)) loyverse.normalize_name(pr.name) as k, pr.id
                   from public.products pr
                  where pr.restaurant_id = v_run.restaurant_id
                    and not exists (select 1 from loyverse.loyverse_item_mappings m2 where m2.product_id = pr.id)
                  order by loyverse.normalize_name(pr.name), pr.created_at, pr.id) c
             on m.id is null and ps.id is null and cardinality(r.errors) = 0 and not r.deleted
            and c.k = loyverse.normalize_name(r.name)
      cross join lateral (
             select case when m.id is not null then 'mapping' when ps.id is not null then 'sku'
                         when c.id is not null then 'name' end as match_rule,
                    coalesce(m.product_id, ps.id, c.id) as matched_product_id,
                    case when m.id is not null then m.loyverse_variant_id
                         when ps.id is not null then ms.loyverse_variant_id end as matched_variant_id,
                    coalesce(v_decisions ->> r.variant_id, v_decisions ->> r.item_id) as chosen) k
      left join public.products pn on pn.id = k.matched_product_id
      -- Resolution: a decision from the decisions file (by variant id, else item id) wins.
      cross join lateral (
             select case
                      when k.match_rule is null then
                        case when k.chosen = 'skip' then 'skip' else 'create' end
                      when k.chosen in ('skip', 'update', 'duplicate') then k.chosen
                      when k.match_rule = 'mapping' then 'update'
                      when v_conflict = 'manual' then null
                      else v_conflict
                    end as decision,
                    case
                      when k.chosen in ('skip', 'update', 'duplicate') then 'decisions file'
                      when k.match_rule = 'mapping' then 're-sync of a mapped product'
                      when k.match_rule is not null and v_conflict <> 'manual' then format('--conflict %s', v_conflict)
                      when k.match_rule is null then 'new'
                    end as reason) d;
    create index on _lv_plan (row_no);
    create index on _lv_plan (variant_id);
    analyze _lv_plan (row_no, variant_id, item_id, decision, product_id, category_ref, matched_product_id);
    perform loyverse._import_plan_progress(p_run_id, 'steps', 2, v_steps);

    -- Updates that cannot be: a product linked to another variant, or two variants for one product.
    update _lv_plan p
       set decision = 'fail', product_id = null,
           decision_reason = format('product "%s" is already linked to Loyverse variant %s', p.matched_name, p.matched_variant_id),
           errors = p.errors || format('product "%s" is already linked to Loyverse variant %s', p.matched_name, p.matched_variant_id)
     where p.run_id = p_run_id and p.decision = 'update' and p.match_rule <> 'mapping'
       and p.matched_variant_id is not null and p.matched_variant_id <> p.variant_id;

    update _lv_plan p
       set decision = 'fail', product_id = null,
           decision_reason = format('variant %s already updates product "%s"', d.first_variant, p.matched_name),
           errors = p.errors || format('variant %s already updates product "%s"', d.first_variant, p.matched_name)
      from (select p2.row_no, row_number() over w as n, first_value(p2.variant_id) over w as first_variant
              from _lv_plan p2
             where p2.run_id = p_run_id and p2.decision = 'update'
            window w as (partition by p2.matched_product_id order by p2.match_rule = 'mapping' desc, p2.row_no)) d
     where p.run_id = p_run_id and p.row_no = d.row_no and d.n > 1;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 3, v_steps);

    -- Duplicates: " (Loyverse)", " (Loyverse 2)", ... after the highest suffix in use, and a
    -- SKU with the same suffix ("-LV", "-LV2", ...).
    update _lv_plan p
       set name = d.base || case when d.n = 1 then ' (Loyverse)' else format(' (Loyverse %s)', d.n) end,
           sku = case when p.sku is null then null
                      when d.n = 1 then p.sku || '-LV' else p.sku || '-LV' || d.n end
      from (select p2.row_no, p2.name as base,
                   coalesce((select max(coalesce(nullif(substring(pr.name from ' \(Loyverse ?([0-9]*)\)$'), ''), '1')::integer)
                               from public.products pr
                              where pr.restaurant_id = v_run.restaurant_id
                                and (loyverse.normalize_name(pr.name) like loyverse.normalize_name(p2.name) || ' (loyverse%)'
                                     or (p2.sku is not null and pr.sku like p2.sku || '-LV%'))), 0)
                   + row_number() over (partition by loyverse.normalize_name(p2.name) order by p2.row_no) as n
              from _lv_plan p2
             where p2.run_id = p_run_id and p2.decision = 'duplicate') d
     where p.run_id = p_run_id and p.row_no = d.row_no;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 4, v_steps);

    -- A SKU that another product of the restaurant already has cannot be written.
    update _lv_plan p
       set decision = 'fail',
           decision_reason = format('SKU %s is already used by product "%s"', p.sku, pr.name),
           errors = p.errors || format('SKU %s is already used by product "%s"', p.sku, pr.name)
      from public.products pr
     where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate') and p.sku is not null
       and pr.restaurant_id = v_run.restaurant_id and pr.sku = p.sku and pr.id <> p.product_id;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 5, v_steps);

    -- Categories: mapped, else the same name, else new; the fallback for unknown ones.
    insert into loyverse.loyverse_import_plan_objects (run_id, kind, loyverse_id, name, local_id, match_rule, decision)
    select p_run_id, 'category', c.id, c.name,
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when coalesce(om.local_id, byname.id) is not null
                     and exists (select 1 from public.categories x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from (select c.id, c.name from _lv_cats c
             where not v_selecting
                or exists (select 1 from _lv_plan p
                            where p.run_id = p_run_id and p.category_ref = c.id
                              and p.decision in ('create', 'update', 'duplicate'))
            union all
            select '(fallback)', 'Uncategorised'
             where exists (select 1 from _lv_plan p
                            where p.run_id = p_run_id and p.category_ref = '(fallback)'
                              and p.decision in ('create', 'update', 'duplicate'))) c
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'category' and om.loyverse_id = c.id
      left join lateral (select x.id from public.categories x
                          where x.restaurant_id = v_run.restaurant_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(c.name)
                          order by x.created_at, x.id limit 1) byname on om.local_id is null;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 6, v_steps);

    -- Product groups: one per written item that has options or several variants.
    insert into loyverse.loyverse_import_plan_objects
        (run_id, kind, loyverse_id, name, option1_name, option2_name, option3_name, description, local_id, match_rule, decision)
    select p_run_id, 'item', g.item_id, g.item_name, g.o1, g.o2, g.o3, g.descr,
           coalesce(om.local_id, g.existing_group, gen_random_uuid()),
           case when om.local_id is not null or g.existing_group is not null then 'mapping' end,
           case when exists (select 1 from public.product_groups x where x.id = coalesce(om.local_id, g.existing_group))
                then 'update' else 'create' end
      from (select p.item_id, min(p.item_name) as item_name,
                   min(case when jsonb_typeof(it.i -> 'option1_name') = 'string' then it.i ->> 'option1_name' end) as o1,
                   min(case when jsonb_typeof(it.i -> 'option2_name') = 'string' then it.i ->> 'option2_name' end) as o2,
                   min(case when jsonb_typeof(it.i -> 'option3_name') = 'string' then it.i ->> 'option3_name' end) as o3,
                   min(case when jsonb_typeof(it.i -> 'description') = 'string' then it.i ->> 'description' end) as descr,
                   (array_agg(pr.product_group_id) filter (where pr.product_group_id is not null))[1] as existing_group
              from _lv_plan p
              join _lv_items it on it.item_id = p.item_id
              left join public.products pr on pr.id = p.product_id and p.match_rule = 'mapping'
             where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate')
               and (case when jsonb_typeof(it.variants) = 'array' then jsonb_array_length(it.variants) else 0 end > 1
                    or jsonb_typeof(it.i -> 'option1_name') = 'string')
             group by p.item_id) g
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'item' and om.loyverse_id = g.item_id;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 7, v_steps);

    -- (group_id is set from these objects by the final insert into loyverse_import_plan)

    -- Modifier groups linked from written items (available in the store), and their options.
    insert into loyverse.loyverse_import_plan_objects (run_id, kind, loyverse_id, name, position, local_id, match_rule, decision)
    select p_run_id, 'modifier', m.id, m.name,
           coalesce(loyverse.jsonb_to_int(m.m -> 'position'), 0),
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when exists (select 1 from public.modifier_groups x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from _lv_mods m
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier' and om.loyverse_id = m.id
      left join lateral (select x.id from public.modifier_groups x
                          where x.restaurant_id = v_run.restaurant_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(m.name)
                          order by x.created_at, x.id limit 1) byname on om.local_id is null
     where exists (select 1 from _lv_plan p
                    where p.run_id = p_run_id and p.decision in ('create', 'update', 'duplicate')
                      and m.id = any (p.modifier_ids));

    insert into loyverse.loyverse_import_plan_objects
        (run_id, kind, loyverse_id, parent_loyverse_id, name, price, position, local_id, match_rule, decision)
    select p_run_id, 'modifier_option', o.opt ->> 'id', g.loyverse_id, btrim(o.opt ->> 'name'),
           round(coalesce(case when jsonb_typeof(o.opt -> 'price') = 'number' then (o.opt ->> 'price')::numeric end, 0), v_dp),
           coalesce(loyverse.jsonb_to_int(o.opt -> 'position'), o.ord::integer - 1),
           coalesce(om.local_id, byname.id, gen_random_uuid()),
           case when om.local_id is not null then 'mapping' when byname.id is not null then 'name' end,
           case when exists (select 1 from public.modifier_options x where x.id = coalesce(om.local_id, byname.id))
                then 'update' else 'create' end
      from loyverse.loyverse_import_plan_objects g
      join _lv_mods m on m.id = g.loyverse_id
      cross join lateral jsonb_array_elements(case when jsonb_typeof(m.m -> 'modifier_options') = 'array'
                                                   then m.m -> 'modifier_options' else '[]'::jsonb end) with ordinality o(opt, ord)
      left join loyverse.loyverse_object_mappings om
             on om.restaurant_id = v_run.restaurant_id and om.kind = 'modifier_option' and om.loyverse_id = o.opt ->> 'id'
      left join lateral (select x.id from public.modifier_options x
                          where x.modifier_group_id = g.local_id
                            and loyverse.normalize_name(x.name) = loyverse.normalize_name(o.opt ->> 'name')
                          order by x.created_at, x.id limit 1) byname on om.local_id is null
     where g.run_id = p_run_id and g.kind = 'modifier'
       and jsonb_typeof(o.opt -> 'id') = 'string' and jsonb_typeof(o.opt -> 'name') = 'string'
       and btrim(o.opt ->> 'name') <> ''
       and coalesce(jsonb_typeof(o.opt -> 'deleted_at'), 'null') = 'null'
       and coalesce(jsonb_typeof(o.opt -> 'price'), 'null') in ('number', 'null')
       and coalesce(case when jsonb_typeof(o.opt -> 'price') = 'number' then (o.opt ->> 'price')::numeric end, 0) between 0 and 9999999999
    on conflict do nothing;
    perform loyverse._import_plan_progress(p_run_id, 'steps', 8, v_steps);

    -- The report: errors, warnings and what cannot carry over faithfully.
    insert into loyverse.loyverse_import_issues (run_id, severity, code, item_id, variant_id, name, message)
    select p_run_id, 'error', 'invalid', p.item_id, p.variant_id, coalesce(p.name, p.item_name), e
      from _lv_plan p cross join lateral unnest(p.errors) e
     where p.run_id = p_run_id
    union all
    select p_run_id, 'fidelity', 'deleted', p.item_id, p.variant_id, p.name, 'deleted in Loyverse: not imported'
      from _lv_plan p
     where p.run_id = p_run_id and p.decision = 'skip' and p.decision_reason = 'deleted in Loyverse'
    union all
    select p_run_id, 'fidelity', 'variable_price', p.item_id, p.variant_id, p.name,
           'VARIABLE price (entered at the counter in Loyverse): imported as 0 and flagged'
      from _lv_plan p
     where p.run_id = p_run_id and p.needs_attention and p.decision in ('create', 'update', 'duplicate')
    union all
    select p_run_id, 'fidelity', 'price_rounded', r.item_id, r.variant_id, r.name,
           format('price %s rounded to %s decimal places', r.adj_price, v_dp)
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.adj_price is not null and round(r.adj_price, v_dp) <> r.adj_price
    union all
    select p_run_id, 'fidelity', 'tax_adjusted', r.item_id, r.variant_id, r.name,
           case when v_incl_tax then format('Loyverse price %s excludes %s%% ADDED tax; imported tax-inclusive', r.raw_price, r.added_rate)
                else format('Loyverse price %s includes %s%% tax; imported without it', r.raw_price, r.included_rate) end
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.raw_price is not null
       and ((v_incl_tax and r.added_rate > 0) or (not v_incl_tax and r.included_rate > 0))
    union all
    select p_run_id, 'fidelity', 'not_for_sale', r.item_id, r.variant_id, r.name,
           'not available for sale in the store: imported inactive'
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.available_for_sale is false
    union all
    select p_run_id, 'warning', 'invalid_stock', r.item_id, r.variant_id, r.name,
           format('stock level %s is not a number in range: stock not imported', left(s.raw::text, 40))
      from _lv_rows r join _lv_stock s on s.variant_id = r.variant_id
     where cardinality(r.errors) = 0 and s.qty is null
    union all
    select p_run_id, 'warning', 'unknown_category', min(r.item_id), null, min(r.base_name),
           format('category %s is not in the category list: imported under "Uncategorised"', left(r.cat_id, 64))
      from _lv_rows r
     where cardinality(r.errors) = 0 and r.cat_id is not null and not r.cat_known
     group by r.item_id, r.cat_id
    union all
    select p_run_id, 'fidelity', 'composite', it.item_id, null, it.i ->> 'item_name',
           'composite item (made of other items): imported as a plain product'
      from _lv_items it
     where it.item_id is not null and loyverse.jsonb_to_bool(it.i -> 'is_composite')
    union all
    select p_run_id, 'fidelity', 'sold_by_weight', it.item_id, null, it.i ->> 'item_name',
           'sold by weight in Loyverse: imported with its unit price'
      from _lv_items it
     where it.item_id is not null and loyverse.jsonb_to_bool(it.i -> 'sold_by_weight')
    union all
    select p_run_id, 'fidelity', 'several_taxes', it.item_id, null, it.i ->> 'item_name',
           format('%s taxes in Loyverse; our catalogue keeps none', jsonb_array_length(it.i -> 'tax_ids'))
      from _lv_items it
     where it.item_id is not null
       and case when jsonb_typeof(it.i -> 'tax_ids') = 'array' then jsonb_array_length(it.i -> 'tax_ids') > 1 else false end
    union all
    select p_run_id, case when m.id is null then 'warning' else 'fidelity' end,
           case when m.id is null then 'unknown_modifier' else 'modifier_not_in_store' end,
           it.item_id, null, it.i ->> 'item_name',
           case when m.id is null then format('modifier %s does not exist: link dropped', left(x.mid, 64))
                else format('modifier "%s" is not available in the store: not linked', m.name) end
      from _lv_items it
      cross join lateral jsonb_array_elements_text(case when jsonb_typeof(it.i -> 'modifier_ids') = 'array'
                                                        then it.i -> 'modifier_ids' else '[]'::jsonb end) x(mid)
      left join _lv_mods m on m.id = x.mid
     where it.item_id is not null and (m.id is null or not m.in_store)
    union all
    select p_run_id, 'warning', 'unknown_tax', it.item_id, null, it.i ->> 'item_name',
           format('tax %s is not in the tax list (or not in this store, or its rate is not 0..1000): ignored', left(x.tid, 64))
      from _lv_items it
      cross join lateral jsonb_array_elements_text(case when jsonb_typeof(it.i -> 'tax_ids') = 'array'
                                                        then it.i -> 'tax_ids' else '[]'::jsonb end) x(tid)
     where it.item_id is not null and not exists (select 1 from _lv_taxes t where t.id = x.tid);
    perform loyverse._import_plan_progress(p_run_id, 'steps', 9, v_steps);

    -- The product group of written rows, and (atomic runs: plan and writes commit together) the
    -- outcome the write will have, so import_apply_batch needs no UPDATE of the plan for it
    -- ('unchanged' until an update is seen to change something).
    -- (in chunks of v_chunk rows, each followed by a progress notice)
    v_after := 0;
    v_n := 9;
    while v_after < v_rows loop
        insert into loyverse.loyverse_import_plan
            (run_id, row_no, item_id, variant_id, item_seq, batch_no, item_name, name, sku, price, loyverse_price,
             price_factor, stock_quantity, is_active, option1_value, option2_value, option3_value, category_ref,
             category_fallback, modifier_ids, extra, errors, needs_attention, attention_reason, match_rule,
             matched_product_id, matched_name, matched_variant_id, decision, decision_reason, product_id,
             group_id, outcome, done)
        select p.run_id, p.row_no, p.item_id, p.variant_id, p.item_seq, p.batch_no, p.item_name, p.name, p.sku, p.price,
               p.loyverse_price, p.price_factor, p.stock_quantity, p.is_active, p.option1_value, p.option2_value,
               p.option3_value, p.category_ref, p.category_fallback, p.modifier_ids, p.extra, p.errors,
               p.needs_attention, p.attention_reason, p.match_rule, p.matched_product_id, p.matched_name,
               p.matched_variant_id, p.decision, p.decision_reason, p.product_id,
               case when p.decision in ('create', 'update', 'duplicate') then o.local_id end,
               case when v_atomic then
                    case p.decision when 'create' then 'created' when 'duplicate' then 'duplicated'
                                    when 'skip' then 'skipped' when 'fail' then 'failed'
                                    when 'update' then 'unchanged' end end,
               v_atomic and p.decision is not null
          from _lv_plan p
          left join loyverse.loyverse_import_plan_objects o
                 on o.run_id = p_run_id and o.kind = 'item' and o.loyverse_id = p.item_id
         where p.row_no > v_after and p.row_no <= v_after + v_chunk;
        v_after := v_after + v_chunk;
        v_n := v_n + 1;
        perform loyverse._import_plan_progress(p_run_id, 'steps', v_n, v_steps);
    end loop;

    -- The run row's progress (items_total) is left to the caller: during an atomic run it is
    -- written from another connection, and a lock taken here would block that.
    return loyverse.import_plan_summary(p_run_id);
end;
$$;

comment on function loyverse.import_plan(bigint) is
    'Plan an import run from its snapshot and options (validation, pricing, conflicts, decisions, '
    'fidelity report); writes only the plan tables. Returns import_plan_summary().';
