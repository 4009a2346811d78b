-- NVTX_EVENTS as the page reader (src/nsys/table_pages.rs) reads it: these
-- integer cells, plus the `text` column, in rowid order. The rows of
-- nvtx.sql follow from them: event types 59, 60, 70, 71 and 75 kept, and
-- StringIds[textId] before text. Where the reader declines the table,
-- nvtx.sql is run instead.
SELECT digest_rows(rowid, start, end, eventType, globalTid, endGlobalTid, textId, domainId)
FROM NVTX_EVENTS NOT INDEXED
