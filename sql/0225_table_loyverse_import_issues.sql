-- What an import run could not carry over faithfully, or rejected: the fidelity report and
-- the validation errors, one row per finding.
create table loyverse.loyverse_import_issues (
    id bigint generated always as identity primary key,
    run_id bigint not null references loyverse.loyverse_import_runs (id) on delete cascade,
    severity text not null
        constraint issue_severity_is_valid check (severity in ('error', 'warning', 'fidelity')),
    code text not null,
    item_id text,
    variant_id text,
    name text,
    message text not null
);

create index loyverse_import_issues_run_id_idx on loyverse.loyverse_import_issues (run_id);

comment on table loyverse.loyverse_import_issues is
    'Findings of an import run: error (the variant was not imported), warning (imported, something '
    'dropped), fidelity (imported, but cannot behave exactly as in Loyverse: VARIABLE price, composite, '
    'sold by weight, several taxes, modifier unavailable in the store, deleted in Loyverse).';
