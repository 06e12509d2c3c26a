-- Safe read of a Loyverse JSON boolean (see jsonb_to_int).
create function loyverse.jsonb_to_bool(p_value jsonb)
returns boolean
language sql
immutable
parallel safe
-- No SET clause: the SQL-standard body is bound when created (no search_path lookup at run
-- time), and a function with SET is never inlined: the import calls this per row.
return case when jsonb_typeof(p_value) = 'boolean' then (p_value #>> '{}')::boolean end;

comment on function loyverse.jsonb_to_bool(jsonb) is 'A JSON boolean as boolean; null for anything else.';
