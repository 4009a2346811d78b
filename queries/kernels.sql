-- Kernel activity, columns present in every real export since 2021, read
-- through the digest_rows aggregate (src/nsys/int_rows.rs): NOT INDEXED
-- keeps the plain table scan, in rowid order.
SELECT digest_rows(rowid, start, end, deviceId, streamId, correlationId, globalPid,
                   shortName, demangledName, graphNodeId)
FROM CUPTI_ACTIVITY_KIND_KERNEL NOT INDEXED
