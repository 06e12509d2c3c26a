-- The receiver's audit row for a delivery it refused (unknown URL secret, bad signature,
-- body too large): nothing of it is stored but what the details say.
create function loyverse.record_rejected_delivery(p_account_id bigint, p_reason text, p_details jsonb)
returns void
language sql
security definer
set search_path = ''
as $$
    insert into loyverse.loyverse_inbound_audit (account_id, decision, details)
    values (p_account_id, 'DELIVERY_REJECTED',
            jsonb_build_object('reason', p_reason) || coalesce(p_details, '{}'));
$$;
comment on function loyverse.record_rejected_delivery(bigint, text, jsonb) is
    'Audit a webhook delivery the receiver refused (4xx): account (null when unknown), reason, details.';
