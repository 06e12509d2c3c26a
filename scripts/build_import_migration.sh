#!/bin/sh
# Build migrations/0030_menu_import.sql from the menu import's sql/ files (kept identical by
# construction), plus the columns it appends to tables of 0002 (their sql/ files carry them
# at the end of their create table). Run after every edit of those sql/ files.
set -e
cd "$(dirname "$0")/.."
out=${1:-migrations/0030_menu_import.sql}
{
echo "-- Menu import from Loyverse: snapshots, plan, object mappings, issues; SQL functions that plan,"
echo "-- write (journaled, set-based), finish and undo an import run; the import_runs view; grants."
echo "-- depends: 0002_foundation"
echo
echo "-- ---- columns appended to foundation tables (sql/0115, sql/0150: last in their create table)"
cat <<'SQL'
alter table public.products add column stock_quantity numeric(12, 3);

comment on column public.products.stock_quantity is
    'Stock in the restaurant''s linked Loyverse store as of the last `import run --with-inventory` '
    '(may be negative: Loyverse allows selling below zero); null = never imported.';

alter table loyverse.loyverse_item_mappings add column price_factor numeric(12, 6) not null default 1;

comment on column loyverse.loyverse_item_mappings.price_factor is
    'Our price / the Loyverse store price, as the menu import converted it for the restaurant''s '
    'prices_include_tax (1 + ADDED rate, or 1 / (1 + INCLUDED rate); 1 when no conversion). Price '
    'sync sends round(products.price / price_factor, currency decimals).';
SQL
echo
for f in sql/020[0-9]_*.sql sql/021*_*.sql sql/022*_*.sql sql/06[0-9][0-9]_*.sql sql/07[0-4][0-9]_*.sql sql/0930_grants_import.sql; do
  echo "-- ---- $f"
  cat "$f"
  echo
done
} > "$out"
