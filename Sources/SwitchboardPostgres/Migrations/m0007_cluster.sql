-- Migration 7: several servers on one database are one cluster. Each node registers itself
-- in switchboard.nodes and refreshes its row every second; a node silent for longer than the
-- server's limit (5 s) counts as gone. Replayable messages are numbered here, by
-- switchboard.publish_history, so that a channel's seq is the same on every node, and announced
-- to every node with pg_notify on 'switchboard_cluster' by the transaction that stores them.
-- Ephemeral messages and presence travel on the same channel without being stored.

-- A cluster message too large for a notification (8,000 bytes) is stored here and announced as
-- '@' and its id; the server deletes rows older than a minute. Unlogged: a notification does
-- not outlive a crash either.
create unlogged table if not exists switchboard.relay (
    id bigserial primary key,
    body text not null,
    created_at timestamptz not null default now()
);

-- The cluster's identity: part of every channel's epoch, so that a new database never takes a
-- client's position in an old one for its own.
create table if not exists switchboard.cluster (id text not null);
insert into switchboard.cluster (id)
select left(md5(random()::text || clock_timestamp()::text || current_database()), 16)
where not exists (select 1 from switchboard.cluster);

create table if not exists switchboard.nodes (
    name text primary key,
    started_at timestamptz not null default now(),
    heartbeat_at timestamptz not null default now(),
    -- Where clients reach it (host:port as configured).
    address text not null default '',
    connections integer not null default 0,
    -- Its rules: the generation counter, a digest of the files' contents (equal on nodes with
    -- the same rules), and the last reload's error (null after a good one).
    rules_generation bigint not null default 0,
    rules_digest text not null default '',
    rules_error text,
    -- Its Postgres Changes slot, dropped once the node has been gone for an hour.
    changes_slot text,
    -- The process beating (random per start): two servers given the same name show as two.
    instance text not null default ''
);

-- One message id per channel: a publish repeated with the same id (on any node) is stored,
-- numbered and delivered once. Older rows that repeat an id (possible before, across epochs)
-- keep only their newest copy.
delete from switchboard.history a using switchboard.history b
where a.topic = b.topic and a.id = b.id and (a.epoch, a.seq) < (b.epoch, b.seq);
create unique index if not exists history_topic_id_index on switchboard.history (topic, id);

-- Stores replayable messages, each numbered after the last of its channel (a channel's in
-- their order in the arrays), and announces each one. Returns (ordinal, epoch, seq) for every message stored; a message whose
-- id its channel already holds is skipped (not returned). The channels' rows are locked first,
-- in name order, so that two nodes' batches cannot deadlock; a channel's messages commit in
-- seq order, and NOTIFY delivers in commit order, so every node sees them in seq order.
create or replace function switchboard.publish_history(
    p_topics text[], p_epochs text[], p_ids text[], p_events text[], p_payloads text[], p_binary_hex text[], p_as_binary boolean[],
    p_published_at bigint[], p_budgets text[], p_node text
) returns table (ordinal integer, epoch text, seq bigint)
language plpgsql
as $$
#variable_conflict use_column
declare
    i integer;
    v_topic text;
    v_positions integer[];
    v_relay bigint;
    v_epoch text;
    v_seq bigint;
    v_body text;
begin
    insert into switchboard.channels as c (topic, epoch, seq)
    select distinct on (t) t, e, 0 from unnest(p_topics, p_epochs) as x(t, e) order by t
    on conflict (topic) do nothing;
    perform 1 from switchboard.channels c where c.topic = any(p_topics) order by c.topic for update;
    -- Channel by channel: its messages not held yet (the first of each id), numbered with one
    -- update of its row (an update per message makes a long chain of row versions to walk).
    for v_topic, v_positions in
        select x.t, array_agg(x.k order by x.k)
        from (select k, p_topics[k] as t, p_ids[k] as d, row_number() over (partition by p_topics[k], p_ids[k] order by k) as r
              from generate_subscripts(p_topics, 1) as k) as x
        where x.r = 1 and not exists (select 1 from switchboard.history h where h.topic = x.t and h.id = x.d)
        group by x.t order by x.t
    loop
        update switchboard.channels c set seq = c.seq + array_length(v_positions, 1), updated_at = clock_timestamp()
        where c.topic = v_topic
        returning c.epoch, c.seq - array_length(v_positions, 1) into v_epoch, v_seq;
        foreach i in array v_positions loop
            v_seq := v_seq + 1;
            insert into switchboard.history (topic, epoch, seq, id, event, payload, binary_hex, as_binary, published_at)
            values (v_topic, v_epoch, v_seq, p_ids[i], p_events[i], p_payloads[i], p_binary_hex[i], p_as_binary[i], p_published_at[i]);
            v_body := case when p_binary_hex[i] <> '' then p_binary_hex[i] else p_payloads[i] end;
            v_body := json_build_array(
                'r', p_node, v_topic, v_epoch, v_seq, p_ids[i], p_events[i], p_as_binary[i], p_binary_hex[i] <> '',
                p_published_at[i], nullif(p_budgets[i], ''))::text || chr(10) || v_body;
            if octet_length(v_body) > 7900 then
                -- Too large for a notification (8,000 bytes): announced by its place in the relay.
                insert into switchboard.relay (body) values (v_body) returning id into v_relay;
                v_body := '@' || v_relay;
            end if;
            perform pg_notify('switchboard_cluster', v_body);
            ordinal := i;
            epoch := v_epoch;
            seq := v_seq;
            return next;
        end loop;
    end loop;
end;
$$;


-- Announces cluster messages in order, each too large for a notification by its place in the
-- relay. (The server's ephemeral messages and presence; its connection commits asynchronously:
-- they need no durability.)
create or replace function switchboard.cluster_notify(p_texts text[]) returns void
language plpgsql
as $$
declare
    t text;
    v_relay bigint;
begin
    foreach t in array p_texts loop
        if octet_length(t) > 7900 then
            insert into switchboard.relay (body) values (t) returning id into v_relay;
            perform pg_notify('switchboard_cluster', '@' || v_relay);
        else
            perform pg_notify('switchboard_cluster', t);
        end if;
    end loop;
end;
$$;
