alter table notes drop column author;
