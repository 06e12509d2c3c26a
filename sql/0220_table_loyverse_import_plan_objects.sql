-- An import run's plan for the objects around products: categories, product groups (one per
-- multi-variant item), modifier groups and options; each matched by mapping or name, or new.
create table loyverse.loyverse_import_plan_objects (
    run_id bigint not null references loyverse.loyverse_import_runs (id) on delete cascade,
    kind text not null
        constraint plan_object_kind_is_valid check (kind in ('category', 'item', 'modifier', 'modifier_option')),
    loyverse_id text not null,
    parent_loyverse_id text,
    name text not null,
    price numeric(12, 2),
    position integer,
    option1_name text,
    option2_name text,
    option3_name text,
    description text,
    local_id uuid not null,
    match_rule text
        constraint plan_object_match_rule_is_valid check (match_rule in ('mapping', 'name')),
    decision text not null
        constraint plan_object_decision_is_valid check (decision in ('create', 'update')),
    primary key (run_id, kind, loyverse_id)
);

comment on table loyverse.loyverse_import_plan_objects is
    'Per run: the categories, product groups, modifier groups and options to create or update '
    '(local_id is our row; match_rule says how an existing one was found).';
