-- The key names are compared by when an import looks for "the same name": case- and
-- space-insensitive ("  Flat  White" = "flat white").
create function loyverse.normalize_name(p_name text)
returns text
language sql
immutable
parallel safe
set search_path = ''
return lower(regexp_replace(btrim(p_name), '\s+', ' ', 'g'));

comment on function loyverse.normalize_name(text) is
    'Lower-cased, trimmed, inner whitespace collapsed: how the menu import compares names.';
