-- The options of a modifier (e.g. "Oat milk" +0.50), as the menu import brings them.
create table public.modifier_options (
    id uuid primary key default gen_random_uuid(),
    modifier_group_id uuid not null references public.modifier_groups (id) on delete cascade,
    name text not null
        constraint modifier_option_name_is_not_blank check (btrim(name) <> ''),
    price numeric(12, 2) not null default 0
        constraint modifier_option_price_is_nonnegative check (price >= 0),
    position integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index modifier_options_modifier_group_id_idx on public.modifier_options (modifier_group_id);

comment on table public.modifier_options is 'An option of a modifier (e.g. "Oat milk" +0.50).';
