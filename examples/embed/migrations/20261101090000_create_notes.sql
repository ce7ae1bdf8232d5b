-- The example application's one table.
create table notes (
    id bigint generated always as identity primary key,
    body text not null,
    created_at timestamptz not null default now()
);
