-- Export metadata, schema 2.9 to 3.1 (renamed to META_DATA_EXPORT in 3.4).
SELECT name, value FROM EXPORT_META_DATA
