-- Which modifier groups a product offers (Loyverse's item modifier_ids, per product).
create table public.product_modifier_groups (
    product_id uuid not null references public.products (id) on delete cascade,
    modifier_group_id uuid not null references public.modifier_groups (id) on delete cascade,
    primary key (product_id, modifier_group_id)
);

create index product_modifier_groups_modifier_group_id_idx on public.product_modifier_groups (modifier_group_id);

comment on table public.product_modifier_groups is 'Which modifier groups a product offers.';
