alter table notes add column author text not null default 'anonymous';
