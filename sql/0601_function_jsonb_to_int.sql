-- Safe reads of Loyverse JSON: a value of the wrong type (or out of range) is null, never
-- an error, so one hostile object cannot abort a set-based import.
create function loyverse.jsonb_to_int(p_value jsonb)
returns integer
language sql
immutable
parallel safe
-- No SET clause: the SQL-standard body is bound when created (no search_path lookup at run
-- time), and a function with SET is never inlined: the import calls this per row.
return case when jsonb_typeof(p_value) = 'number' then
            case when (p_value #>> '{}')::numeric between -2147483648 and 2147483647
                 then round((p_value #>> '{}')::numeric)::integer end end;

comment on function loyverse.jsonb_to_int(jsonb) is 'A JSON number as an integer; null for anything else or out of range.';
