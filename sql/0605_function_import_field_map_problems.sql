-- Checks an import's --map (Loyverse field -> our products column) against both schemas:
-- the Loyverse item/variant fields we know, and public.products as it is in this database.
create function loyverse.import_field_map_problems(p_map jsonb)
returns table (loyverse_field text, our_column text, problem text)
language sql
stable
set search_path = ''
as $$
    with m as (
        select e.key as f, e.value as c
          from jsonb_each(case when jsonb_typeof(p_map) = 'object' then p_map else '{}'::jsonb end) e
    ),
    lv(f) as (
        values ('item_name'), ('handle'), ('reference_id'), ('description'), ('form'), ('color'),
               ('image_url'), ('id'), ('option1_name'), ('option2_name'), ('option3_name'),
               ('sku'), ('barcode'), ('reference_variant_id'), ('variant_id'), ('option1_value'),
               ('option2_value'), ('option3_value'), ('cost'), ('purchase_cost')
    ),
    cols as (
        select a.attname::text as c, format_type(a.atttypid, a.atttypmod) as t
          from pg_catalog.pg_attribute a
         where a.attrelid = 'public.products'::regclass and a.attnum > 0 and not a.attisdropped
    )
    select m.f, m.c #>> '{}',
           case
             when jsonb_typeof(m.c) <> 'string' then 'the column must be given as text'
             when not exists (select 1 from lv where lv.f = m.f) then
               format('%s is not a Loyverse item or variant field (known: %s)', m.f,
                      (select string_agg(f, ', ' order by f) from lv))
             when not exists (select 1 from cols where cols.c = m.c #>> '{}') then
               format('products has no column %s', m.c #>> '{}')
             when (m.c #>> '{}') in ('id', 'restaurant_id', 'category_id', 'product_group_id', 'price',
                                    'is_active', 'created_at', 'updated_at') then
               format('products.%s is set by the import itself and cannot be mapped', m.c #>> '{}')
             when (select t from cols where cols.c = m.c #>> '{}') not in ('text', 'character varying')
                  and (select t from cols where cols.c = m.c #>> '{}') not like 'character varying(%' then
               format('products.%s is %s; only text columns can be mapped', m.c #>> '{}',
                      (select t from cols where cols.c = m.c #>> '{}'))
             when (select count(*) from m m2 where m2.c = m.c) > 1 then
               format('products.%s is mapped more than once', m.c #>> '{}')
           end
      from m
     where jsonb_typeof(m.c) <> 'string'
        or not exists (select 1 from lv where lv.f = m.f)
        or not exists (select 1 from cols where cols.c = m.c #>> '{}')
        or (m.c #>> '{}') in ('id', 'restaurant_id', 'category_id', 'product_group_id', 'price',
                             'is_active', 'created_at', 'updated_at')
        or (select t from cols where cols.c = m.c #>> '{}') not in ('text', 'character varying')
           and (select t from cols where cols.c = m.c #>> '{}') not like 'character varying(%'
        or (select count(*) from m m2 where m2.c = m.c) > 1;
$$;

comment on function loyverse.import_field_map_problems(jsonb) is
    'Problems of an import field mapping {"loyverse_field": "products_column"}; no rows = valid.';
