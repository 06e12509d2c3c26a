-- The key names are compared by when an import looks for "the same name": case- and
-- space-insensitive ("  Flat  White" = "flat white").
create function loyverse.normalize_name(p_name text)
returns text
language sql
immutable
parallel safe
-- No SET clause: the SQL-standard body is bound when created (no search_path lookup at run
-- time), and a function with SET is never inlined: the import calls this per row.
return lower(regexp_replace(btrim(p_name), '\s+', ' ', 'g'));

comment on function loyverse.normalize_name(text) is
    'Lower-cased, trimmed, inner whitespace collapsed: how the menu import compares names.';
