-- Safe read of a Loyverse JSON boolean (see jsonb_to_int).
create function loyverse.jsonb_to_bool(p_value jsonb)
returns boolean
language sql
immutable
parallel safe
set search_path = ''
return case when jsonb_typeof(p_value) = 'boolean' then (p_value #>> '{}')::boolean end;

comment on function loyverse.jsonb_to_bool(jsonb) is 'A JSON boolean as boolean; null for anything else.';
