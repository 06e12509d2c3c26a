-- What an import run's plan would do: counts by decision, conflicts by rule, objects, issues.
create function loyverse.import_plan_summary(p_run_id bigint)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'run_id', p_run_id,
        'variants', count(*),
        'items', count(distinct p.item_seq),
        'create', count(*) filter (where p.decision = 'create'),
        'update', count(*) filter (where p.decision = 'update'),
        'skip', count(*) filter (where p.decision = 'skip'),
        'duplicate', count(*) filter (where p.decision = 'duplicate'),
        'fail', count(*) filter (where p.decision = 'fail'),
        'undecided', count(*) filter (where p.decision is null),
        'matched', jsonb_build_object(
            'mapping', count(*) filter (where p.match_rule = 'mapping'),
            'sku', count(*) filter (where p.match_rule = 'sku'),
            'name', count(*) filter (where p.match_rule = 'name')),
        'objects', (select coalesce(jsonb_object_agg(x.kind, x.counts), '{}')
                      from (select o.kind, jsonb_build_object('create', count(*) filter (where o.decision = 'create'),
                                                              'update', count(*) filter (where o.decision = 'update')) as counts
                              from loyverse.loyverse_import_plan_objects o
                             where o.run_id = p_run_id group by o.kind) x),
        'issues', (select coalesce(jsonb_object_agg(x.severity, x.n), '{}')
                     from (select i.severity, count(*) as n from loyverse.loyverse_import_issues i
                            where i.run_id = p_run_id group by i.severity) x))
      from loyverse.loyverse_import_plan p
     where p.run_id = p_run_id;
$$;

comment on function loyverse.import_plan_summary(bigint) is
    'Counts of an import run''s plan: variants by decision (create/update/skip/duplicate/fail/undecided), '
    'matches by rule, categories/groups/modifiers to create or update, issues by severity.';
