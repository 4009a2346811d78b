-- Column names of one table (?1), to pick the decoder for this schema.
SELECT name FROM pragma_table_info(?1)
