-- The webhook receiver's (and the poller's) one statement: store a delivery as received and
-- wake the account's inbox job. A redelivery (same body bytes) is a no-op returning null.
create function loyverse.receive_loyverse_delivery(
    p_account_id bigint,
    p_source text,
    p_headers jsonb,
    p_body bytea
)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id bigint;
begin
    insert into loyverse.loyverse_inbox (account_id, source, headers, body)
    values (p_account_id, p_source, coalesce(p_headers, '{}'), p_body)
    on conflict (account_id, body_sha256) do nothing
    returning id into v_id;
    if v_id is not null then
        perform loyverse.wake_inbox(p_account_id);
    end if;
    return v_id;
end;
$$;
comment on function loyverse.receive_loyverse_delivery(bigint, text, jsonb, bytea) is
    'Store one delivery from Loyverse as received (source webhook|poll|reconcile) and wake the inbox job; '
    'returns the inbox id, or null when the same body was already received (a redelivery).';
