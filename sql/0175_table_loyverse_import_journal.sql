-- Before- and after-images of every row an import touched, so `import undo` restores them exactly.
create table loyverse.loyverse_import_journal (
    id bigint generated always as identity primary key,
    run_id bigint not null references loyverse.loyverse_import_runs (id) on delete cascade,
    table_name text not null
        constraint journal_table_is_known check (table_name in ('categories', 'product_groups', 'products', 'modifier_groups', 'modifier_options', 'product_modifier_groups', 'loyverse_item_mappings')),
    row_key text not null,
    action text not null
        constraint journal_action_is_valid check (action in ('INSERT', 'UPDATE', 'DELETE')),
    before_image jsonb,
    after_image jsonb,
    created_at timestamptz not null default now(),
    constraint loyverse_import_journal_run_id_table_name_row_key_key unique (run_id, table_name, row_key),
    constraint updates_keep_a_before_image check (action = 'INSERT' or before_image is not null)
);

comment on table loyverse.loyverse_import_journal is
    'Before- and after-images of every row an import run touched, so `import undo` can restore them.';
comment on column loyverse.loyverse_import_journal.row_key is
    'The row''s key (id, or product_id:modifier_group_id for a link); for rows an import created, '
    'journaled set-based, ''#<xid>.<batch>.<chunk>'' with after_image a JSON array of up to 5,000 row images.';
