-- How loyverse.import_plan tells its caller how far it is, while it runs: a NOTICE is sent to
-- the client at once (the statement has not returned), so the caller can write the run's
-- progress from another connection. The plan's own transaction writes nothing for it.
create function loyverse._import_plan_progress(p_run_id bigint, p_stage text, p_done bigint, p_total bigint)
returns void
language plpgsql
set search_path = ''
as $$
begin
    raise notice using
        message = format('import_plan progress: run %s, %s %s of %s', p_run_id, p_stage, p_done, p_total),
        detail = jsonb_build_object('run_id', p_run_id, 'stage', p_stage, 'done', p_done, 'total', p_total,
                                    'at', clock_timestamp())::text;
end;
$$;
comment on function loyverse._import_plan_progress(bigint, text, bigint, bigint) is
    'Internal to import_plan: a progress NOTICE (detail: JSON run_id, stage items|steps, done, total, at = '
    'the planning backend''s clock_timestamp()). psql shows it; loyverse_sync.importer.runs writes it to the run.';
