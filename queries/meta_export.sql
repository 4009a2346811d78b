-- Export metadata, schema 3.4 and later.
SELECT name, value FROM META_DATA_EXPORT
