-- Migration 2: the replay history kept in the database, so that a restart keeps each
-- channel's epoch and a client resumes with recovered: true. Rows are written before the
-- messages they hold are delivered; the server prunes them past the longest retention.

create table if not exists switchboard.channels (
    topic text primary key,
    epoch text not null,
    seq bigint not null,
    updated_at timestamptz not null default now()
);

create table if not exists switchboard.history (
    topic text not null,
    epoch text not null,
    seq bigint not null,
    id text not null,
    event text not null,
    -- The payload's JSON text as the server serialized it ('' for a binary message).
    payload text not null,
    -- A binary (kind 3) message's body, hex ('' for JSON).
    binary_hex text not null default '',
    as_binary boolean not null default false,
    -- Milliseconds since 1970, on the server's clock.
    published_at bigint not null,
    primary key (topic, epoch, seq)
);

create index if not exists history_published_at_index on switchboard.history (published_at);
