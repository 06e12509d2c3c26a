-- What the webhook receiver needs besides the INSERT: the account behind a URL secret (with
-- its signing secret, still encrypted), and the sweep of inboxes whose wake-up was lost.
create function loyverse.inbound_account_for_secret(p_url_secret text)
returns table (account_id bigint, client_secret_ciphertext bytea, client_secret_key_id text)
language sql
stable
security definer
set search_path = ''
as $$
    select s.account_id, s.client_secret_ciphertext, s.client_secret_key_id
      from loyverse.loyverse_inbound_settings s
     where s.url_secret = p_url_secret;
$$;
comment on function loyverse.inbound_account_for_secret(text) is
    'The webhook receiver''s lookup: the account whose URL secret this is (no row: unknown, 404).';

create function loyverse.wake_pending_inboxes()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_account bigint;
    v_count integer := 0;
begin
    for v_account in select distinct i.account_id from loyverse.loyverse_inbox i
                      where i.status = 'pending' and i.next_attempt_at <= now() loop
        if loyverse.wake_inbox(v_account) then
            v_count := v_count + 1;
        end if;
    end loop;
    return v_count;
end;
$$;
comment on function loyverse.wake_pending_inboxes() is
    'Safety net (periodic): wake the inbox job of every account with a due pending delivery; returns jobs queued.';
