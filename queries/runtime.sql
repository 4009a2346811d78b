-- CUDA runtime and driver API calls; nameId points into StringIds. Read
-- through the digest_rows aggregate (src/nsys/int_rows.rs), in rowid order.
SELECT digest_rows(rowid, start, end, globalTid, correlationId, nameId)
FROM CUPTI_ACTIVITY_KIND_RUNTIME NOT INDEXED
