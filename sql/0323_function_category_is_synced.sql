-- A restaurant's category filters, the one definition: a product is synced to Loyverse when
-- include_category_ids is empty or holds its category, and exclude_category_ids does not.
-- No SET search_path on purpose (like loyverse.round_price): the products trigger's upsert
-- uses it per row and only an inlined SQL function is free there; every name is
-- schema-qualified instead.
create function loyverse.category_is_synced(p_category_id uuid, p_include uuid[], p_exclude uuid[])
returns boolean
language sql
immutable
as $$
    select (pg_catalog.cardinality(p_include) operator(pg_catalog.=) 0
            or p_category_id operator(pg_catalog.=) any (p_include))
       and (p_category_id is null or not p_category_id operator(pg_catalog.=) any (p_exclude))
$$;
comment on function loyverse.category_is_synced(uuid, uuid[], uuid[]) is
    'Whether a product of this category passes the include / exclude category filters '
    '(include empty = every category).';
