-- An import run's plan: one row per Loyverse variant, with its validated values, the
-- conflict found, the decision and (after the write) its outcome. Built by import_plan().
create table loyverse.loyverse_import_plan (
    run_id bigint not null references loyverse.loyverse_import_runs (id) on delete cascade,
    row_no integer not null,
    item_id text,
    variant_id text,
    item_seq integer not null,
    batch_no integer not null default 0,
    item_name text,
    name text,
    sku text,
    price numeric(12, 2),
    loyverse_price numeric,
    price_factor numeric(12, 6) not null default 1,
    stock_quantity numeric(12, 3),
    is_active boolean not null default true,
    option1_value text,
    option2_value text,
    option3_value text,
    category_ref text,
    category_fallback boolean not null default false,
    modifier_ids text[] not null default '{}',
    extra jsonb not null default '{}',
    errors text[] not null default '{}',
    needs_attention boolean not null default false,
    attention_reason text,
    match_rule text
        constraint plan_match_rule_is_valid check (match_rule in ('mapping', 'sku', 'name')),
    matched_product_id uuid,
    matched_name text,
    matched_variant_id text,
    decision text
        constraint plan_decision_is_valid check (decision in ('create', 'update', 'skip', 'duplicate', 'fail')),
    decision_reason text,
    product_id uuid,
    group_id uuid,
    outcome text
        constraint plan_outcome_is_valid check (outcome in ('created', 'updated', 'unchanged', 'skipped', 'duplicated', 'failed')),
    done boolean not null default false,
    primary key (run_id, row_no)
);

create index loyverse_import_plan_run_id_batch_no_idx on loyverse.loyverse_import_plan (run_id, batch_no) where not done;

comment on table loyverse.loyverse_import_plan is
    'Per run and Loyverse variant: validated values, conflict (match_rule: mapping, sku or name), '
    'decision and outcome. product_id is chosen when planning, so a resumed run never duplicates.';
comment on column loyverse.loyverse_import_plan.decision is
    'create | update | skip | duplicate | fail; null = a conflict still undecided (manual mode).';
comment on column loyverse.loyverse_import_plan.price_factor is
    'price / loyverse_price: the tax conversion applied (see loyverse_item_mappings.price_factor).';
