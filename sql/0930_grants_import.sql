-- Grants for the menu import's tables, functions and view.
grant select, insert, update, delete on loyverse.loyverse_snapshots, loyverse.loyverse_snapshot_objects,
    loyverse.loyverse_object_mappings, loyverse.loyverse_import_plan, loyverse.loyverse_import_plan_objects,
    loyverse.loyverse_import_issues to loyverse_worker;
grant usage, select on sequence loyverse.loyverse_snapshots_id_seq, loyverse.loyverse_import_issues_id_seq
    to loyverse_worker;
grant execute on function loyverse.normalize_name(text), loyverse.jsonb_to_int(jsonb), loyverse.jsonb_to_bool(jsonb),
    loyverse.import_field_map_problems(jsonb), loyverse.import_plan(bigint), loyverse.import_plan_summary(bigint),
    loyverse._import_plan_progress(bigint, text, bigint, bigint),
    loyverse.import_journal_before(bigint, text, text[], text), loyverse.import_journal_refresh(bigint),
    loyverse.import_apply_objects(bigint), loyverse.import_apply_batch(bigint, integer),
    loyverse.import_finish(bigint), loyverse.import_undo(bigint, boolean) to loyverse_worker;
grant select on loyverse.import_runs to loyverse_worker, loyverse_readonly;
