-- Migration 3: every committed row of realtime.messages is announced to the server by a NOTIFY
-- that carries the row itself, so that it is delivered as soon as its transaction commits
-- instead of at the next decoding round. PostgreSQL delivers notifications only for committed
-- transactions and in commit order, which is what delivery needs; the replication slot stays
-- the record of what was delivered (it catches what no notification carried: rows committed
-- while the server was away, rows too big for a notification, rows inserted with triggers off).
-- Idempotent.

-- The row as JSON, or only its id when that would not fit in a notification (at most 7999
-- bytes): the server then reads the row from the slot.
create or replace function switchboard.notify_message() returns trigger
language plpgsql
as $$
declare
    body text;
begin
    body := json_build_object(
        'id', new.id, 'topic', new.topic, 'event', new.event, 'payload', new.payload,
        'private', new.private, 'extension', new.extension, 'inserted_at', new.inserted_at::text)::text;
    if octet_length(body) >= 8000 then
        body := new.id::text;
    end if;
    perform pg_notify('switchboard_messages', body);
    return null;
end;
$$;

drop trigger if exists switchboard_notify on realtime.messages;
create trigger switchboard_notify after insert on realtime.messages
    for each row execute function switchboard.notify_message();

-- realtime.send as in migration 1, without its own wake-up NOTIFY (the trigger announces the row).
create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
as $$
declare
    generated_id uuid;
    final_payload jsonb;
begin
    begin
        generated_id := gen_random_uuid();
        final_payload := payload;
        if jsonb_typeof(payload) = 'object' and not (payload ? 'id') then
            final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
        end if;
        perform set_config('realtime.topic', topic, true);
        insert into realtime.messages (id, payload, event, topic, private, extension)
        values (generated_id, final_payload, event, topic, private, 'broadcast');
    exception
        when others then
            raise warning 'WarnSendingBroadcastMessage: %', sqlerrm;
    end;
end;
$$;
