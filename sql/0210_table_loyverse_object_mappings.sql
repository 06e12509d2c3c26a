-- Which of our categories, product groups, modifier groups and options came from which
-- Loyverse object, so a re-import renames in place instead of creating another copy.
create table loyverse.loyverse_object_mappings (
    restaurant_id uuid not null references public.restaurants (id) on delete cascade,
    kind text not null
        constraint object_mapping_kind_is_valid check (kind in ('category', 'item', 'modifier', 'modifier_option')),
    loyverse_id text not null,
    local_id uuid not null,
    import_run_id bigint references loyverse.loyverse_import_runs (id) on delete set null,
    created_at timestamptz not null default now(),
    primary key (restaurant_id, kind, loyverse_id)
);

create index loyverse_object_mappings_import_run_id_idx on loyverse.loyverse_object_mappings (import_run_id);

comment on table loyverse.loyverse_object_mappings is
    'Loyverse category / item / modifier / modifier option id -> our categories / product_groups / '
    'modifier_groups / modifier_options row (local_id), per restaurant. Rows are only ever '
    'inserted by an import; undo removes those its run inserted.';
comment on column loyverse.loyverse_object_mappings.import_run_id is 'The import run that created this mapping.';
