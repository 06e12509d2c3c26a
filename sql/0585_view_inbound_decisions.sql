-- The DBA's view of the audit trail of changes heard from Loyverse, newest first by id.
create view loyverse.inbound_decisions as
select a.id,
       a.at,
       a.account_id,
       a.restaurant_id,
       r.name as restaurant_name,
       a.product_id,
       p.name as product_name,
       a.decision,
       a.applied,
       a.our_price,
       a.loyverse_price,
       a.loyverse_id,
       a.inbox_id,
       i.source,
       a.details
  from loyverse.loyverse_inbound_audit a
  left join public.restaurants r on r.id = a.restaurant_id
  left join public.products p on p.id = a.product_id
  left join loyverse.loyverse_inbox i on i.id = a.inbox_id;

comment on view loyverse.inbound_decisions is
    'Every decision on a change heard from Loyverse (webhook, poll, reconciliation): PRICE_APPLIED, '
    'ECHO_IGNORED, AGREED, CONFLICT_HELD / _KEPT_OURS / _KEPT_THEIRS (details.policy), STALE_IGNORED, '
    'TOMBSTONE_IGNORED, ITEM_CREATED / _RENAMED / _DELETED, VARIANT_DELETED, STOCK_APPLIED, '
    'DELIVERY_REJECTED / _FAILED, DRIFT_FOUND / _REPAIRED; applied = whether our tables were changed.';
