-- The raw JSON objects of a snapshot, exactly as Loyverse sent them (no cleaning here: the
-- import functions validate them, so a hostile object is reported, not silently fixed).
create table loyverse.loyverse_snapshot_objects (
    snapshot_id bigint not null references loyverse.loyverse_snapshots (id) on delete cascade,
    seq integer not null,
    kind text not null
        constraint snapshot_object_kind_is_valid check (kind in ('store', 'category', 'item', 'modifier', 'tax', 'inventory')),
    loyverse_id text,
    payload jsonb not null,
    primary key (snapshot_id, seq)
);

create index loyverse_snapshot_objects_snapshot_id_kind_loyverse_id_idx
    on loyverse.loyverse_snapshot_objects (snapshot_id, kind, loyverse_id);

comment on table loyverse.loyverse_snapshot_objects is
    'Raw Loyverse objects of a snapshot in fetch order (seq). loyverse_id is the object''s id when '
    'it is a string (variant_id:store_id for inventory levels), else null.';
